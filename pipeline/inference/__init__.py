"""A trained head run on inputs: predictions on new images and scores under shots and noise."""
