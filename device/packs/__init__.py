"""Model packs: one file holding a model per sign, their cards, a manifest with every
file's sha256, golden images for the self-test, and optionally a signature.

- ``manifest``: the pack's schema (``PackManifest``, golden set), names, hashes, versions.
- ``check``: what the device checks before it runs a pack (extract safely, hashes,
  cards against models, signature, self-test on the golden images).
- ``golden``: the golden set and its images, read for the self-test and the packer.
- ``container``: a pack file is a plain tar (compressed ones are refused, alike everywhere).
- ``install``: install with an atomic switch, keep the previous pack, roll back.

``convert.packer`` writes packs; ``device.grading.models.ModelSet`` loads an installed one.
"""
