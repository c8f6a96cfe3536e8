"""Backbones that keras.applications lacks, built from Keras layers after their papers.

Each module exposes ``build(input_shape, *, include_top=False, classes=1000, name=...)``
returning a functional ``keras.Model`` that takes float images already normalised to
[-1, 1] (or caffe-style for ResNet v1) and, headless, returns the last feature map.
``include_top=True`` adds global pooling and a ``classes``-way dense layer; it exists
so the tests can compare parameter counts with the published (1000-class) figures in
each module's ``PUBLISHED_PARAMS``.

Original code of this project: written from the papers' tables and figures.
"""
