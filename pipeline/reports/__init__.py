"""What a trained head shows: its run folder (:mod:`.run_folder`), plots (:mod:`.plots`),
predictions on new images (:mod:`.predict`), the spiral figure (:mod:`.spiral`), and its
robustness to shots and noise (:mod:`.robustness`: scores and plot; :mod:`.evaluate`: the
grid of settings run on a head, and its outputs).
"""
