"""The contracts every part shares, workstation and device alike: the vocabulary of signs,
grades and regions, the model card and its human ceiling, image reading and encoding, durable
writes, the errors a person can act on, the EASI arithmetic and the CLI plumbing.

Nothing here imports another layer of the device (tests/test_architecture.py)."""
