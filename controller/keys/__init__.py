"""SSH keys allowed to git push over SSH."""
