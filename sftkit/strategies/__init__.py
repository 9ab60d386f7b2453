"""Built-in training strategies (instruction, tone, classification, domain) and what they share:
the trainer (:mod:`.trainer`), batch collators (:mod:`.collate`), the run directory life cycle
(:mod:`.rundir`) and the lock file (:mod:`.lockfile`). Nothing heavy is imported here."""
