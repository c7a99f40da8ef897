"""Keyboard shortcuts that press the page's buttons (one key per label, next, previous, tags).

Like the ``streamlit-shortcuts`` package, a tiny same-origin iframe adds one keydown listener to
the page and clicks the button whose widget key a pressed key maps to. Unlike it (1.2.2), keys
typed into a text field, e.g. the note, are left alone: typing "ok" there must not label the
scan "outlier".
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import streamlit as st

# The listener is a script element of the page itself, not of this frame: Streamlit may replace
# the frame on a rerun, and a listener from a removed frame's realm stops running.
_LISTENER = """
window.__ctaeShortcutListener = (event) => {
  const target = event.target;
  const typing = target && (target.isContentEditable ||
    ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
  if (typing || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const key = (window.__ctaeShortcuts || {})[event.key.toLowerCase()];
  if (!key) return;
  const button = document.querySelector(`.st-key-${key} button`);
  if (!button || button.disabled) return;
  event.preventDefault();
  window.__ctaeLastShortcutAt = performance.now();
  button.click();
};
document.addEventListener('keydown', window.__ctaeShortcutListener);
"""
_SCRIPT = """<script>
const win = window.parent;
win.__ctaeShortcuts = %s;
if (!win.__ctaeShortcutListener) {
  const script = win.document.createElement('script');
  script.textContent = %s;
  win.document.head.appendChild(script);
}
</script>"""


def add_shortcuts(keys: Mapping[str, str]) -> None:
    """Bind keyboard keys (``"o"``, ``"arrowright"``) to the buttons with these widget keys."""
    mapping = {k.lower(): widget for k, widget in keys.items()}
    st.iframe(_SCRIPT % (json.dumps(mapping), json.dumps(_LISTENER)), height=1, width=1)  # same-origin: reaches the page
