"""The alerting domain (seed Phase 5 section 2): rules in ``automation.alert_rules``, Prometheus-exact
state in ``automation.alert_state``, every firing in ``automation.alert_history``, maintenance windows in
``automation.alert_suppressions``, and grouped Slack notifications. See docs/ALERTING_RULES.md.

Pure: ``state_machine`` (Prometheus semantics), ``metric_catalog`` (what a rule's metric means),
``suppressions`` (maintenance windows). Edges: ``store`` (SQL). Orchestration: ``engine`` (one evaluation),
``notifications`` (the Slack outbox).
"""
