"""A scan, from a camera frame to a typed result: the pipeline, re-cropping a stored scan,
the live preview, and the service that builds camera, models
and scanner from the config. No Flask here; the web app and the CLI drive it."""
