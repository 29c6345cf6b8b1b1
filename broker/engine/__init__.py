"""The messaging engine: STOMP sessions, destinations, subscriptions, selectors, transactions.

Transport-agnostic (a session talks to a `transports.base.FrameLink`) and lock-agnostic: the HA
lifecycle hands it an `AnswerGate` (may we say CONNECTED or RECEIPT now?) and a store. It never
imports `broker.ha`, `broker.daemon` or `broker.tools` (an import-linter contract says so).
"""
