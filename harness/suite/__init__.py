"""The machinery behind `pytest suites/` and the matrix commands: tiers and cells (`matrix`), a deterministic split
of them (`sharding`), one suite session and its verdicts (`session`), the tests each tier suite imports
(`tier_tests`), the pytest hooks (`plugin`), and option parsers and options declared once for the plugin and every
command (`options`)."""
