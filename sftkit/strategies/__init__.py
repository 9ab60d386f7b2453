"""Built-in training strategies (instruction, tone, classification, domain) and what they share:
the trainer (:mod:`.trainer`) and batch collators (:mod:`.collate`). Nothing heavy is imported here."""
