"""One LightningDataModule per dataset, on plumbing written once.

The DataModules (``fer2013``, ``ckplus``, ``face_expression``, ``autism``, ``face_segmentation``,
``liver``) build on :mod:`~litlab.datamodules.base` (loader settings, the setup skeleton, the
``num_classes`` / ``in_chans`` / ``class_names`` contract) and share: :mod:`~.splits`,
:mod:`~.cache` (the atomic writer), :mod:`~.identity` (md5 ids, dHash), :mod:`~.embedded` (the
generated stand-in datasets, drawn by :mod:`~.synthetic`), :mod:`~.folders`, :mod:`~.arrays`,
:mod:`~.augment`, :mod:`~.face_preprocessing` and the dataset readers (``fer2013_csv``,
``liver_sources`` / ``liver_decode`` / ``liver_cache``, ``pseudo_masks``, ``face_masks``,
``doubling``, ``samplers``). Nothing here knows a model: the segment-then-classify arm
(``autism.AutismSegmentedDataModule``) serves the background-removed copy (``autism_copy``) that
the ``litlab workflow segment-then-classify`` runs write.
"""
