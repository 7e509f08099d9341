"""What a trained head shows: its run folder (:mod:`.run_folder`), plots (:mod:`.plots`),
predictions on new images (:mod:`.predict`), and the spiral figure (:mod:`.spiral`).
"""
