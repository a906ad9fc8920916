"""The streaming detector (动态预警): declarative rules over the ledger, warnings back into it.

rules.py       rule files (YAML, rule.schema.json) -> immutable RuleSet, hashes, overrides
predicates.py  declarative `where` conditions and the named domain facts
engine.py      Engine: events and a clock in, warning/card events out (matchers.py: kinds)
dispatch.py    per event type: which rules, handlers and key paths (compiled.py: conditions)
timers.py      durable absence timers on event time; calendar.py: working days
escalation.py  R24 cards over attributed warnings
state.py       keyed state and its snapshots (SQLite detector.db / PostgreSQL table)
detector.py    the service: follow the log, append signed warnings, snapshot
lifecycle.py   acknowledged -> rectification ordered -> rectified -> closed (transitions checked)
controls.py    graded controls (分级防控): grade -> category, focus, action per level
guards.py      blocking guards (事中阻断): BlockingGuard behind Producer.check, command.rejected
fixtures.py    promtool-style rule fixtures (`neikong rules test`); lint.py: lock.json
"""
