"""The labelling studio (``python -m trainer label``): a workstation web app that turns a
clinic's folder of photos into graded lesion crops.

Map: ``db`` (project folder, SQLite schema, one transaction per save), ``models`` (typed
contracts), ``photos`` (import a photo folder), ``users``, ``annotations`` (queues and saves),
``importers`` (CSV and COCO labels), ``matching`` (boxes matched across raters by IoU),
``consensus`` (median grades, adjudication), ``agreement`` (kappa, alpha, bootstrap),
``export`` (crops + manifest, box lists, COCO), ``web`` (Flask app), ``cli``.
It never runs on the device; it imports only the device's shared contracts.
"""
