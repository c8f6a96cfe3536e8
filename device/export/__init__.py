"""Reviewed scans leaving the device for training: the rows, the dataset folder, the archive
download, where an export may be written and the work folders an interrupted export leaves."""
