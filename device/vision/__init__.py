"""Looking at a frame, without state and without the store or the web: one shared set of
downscaled views and a skin mask (frameviews), faces and their landmarks, the areas a crop keeps
off, the crop itself, photo quality, live hints and the registration of one lesion across visits."""
