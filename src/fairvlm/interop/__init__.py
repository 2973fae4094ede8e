"""Interoperation with other evaluation tools: fairvlm datasets as their tasks, their
per-sample logs as fairvlm records (:mod:`.lmms_eval_export`, :mod:`.lmms_eval_import`).
These modules parse and write the other tool's files themselves: fairvlm never imports
the tool."""
