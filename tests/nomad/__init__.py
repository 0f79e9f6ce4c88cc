"""Tests of the nomad runtime's job specs (templates in jobspecs/, renderer in
controller/runtime/nomad/), checked against the strict fake Nomad in tests/fakes."""
