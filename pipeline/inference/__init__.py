"""A trained head run on inputs: predictions on new images (:mod:`.predict`) and scores under
shots and noise (:mod:`.robustness`: scores and plot; :mod:`.evaluate`: the grid of settings
run on a head, and its outputs).
"""
