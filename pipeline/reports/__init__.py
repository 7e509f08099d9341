"""What a trained run shows: its run folder (:mod:`.run_folder`), plots (:mod:`.plots`,
:mod:`.figures`) and the spiral figure (:mod:`.spiral`).
"""
