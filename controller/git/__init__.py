"""git receive: bare repos, smart HTTP, SSH, and the pre-receive hook client."""
