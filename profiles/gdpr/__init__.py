"""GDPR and data governance: export, erasure, retention and consent to bot messages.

Services live in the submodules (subjects, export, erasure, remote, retention, consent); this
package stays import-light because profiles/models.py imports its models.
"""
