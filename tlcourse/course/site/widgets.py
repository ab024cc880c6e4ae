"""Widget outputs as text: what a static page shows where JupyterLab drew an ipywidget.

A saved notebook keeps a widget as a ``application/vnd.jupyter.widget-view+json`` output (a
model id) whose ``text/plain`` is the widget's repr at the moment it was displayed: for tqdm's
bars that is ``0%`` even when the bar finished at 100 %, for other widgets ``HBox(children=...)``.
Drawing the widget itself would need the widget manager's JavaScript from a CDN and would run
script from the notebook. Instead each widget is rendered as text from the widget state saved in
the notebook's metadata (the last value the kernel sent): a progress bar as its description,
percentage and counts, a question as its prompt and options, buttons as ``[Check]``. A widget
whose state was not saved becomes a note to open the notebook in JupyterLab.
"""
from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
OPEN_IN_LAB = "(an interactive widget: open the notebook in JupyterLab to use it)"
_TAG = re.compile(r"<[^>]*>")
_BREAK = re.compile(r"<br\s*/?>|</(?:p|div|li|tr)>", re.IGNORECASE)
_BAR = 20
_MAX_DEPTH = 20


def widget_states(metadata: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{model_id: state}`` from a notebook's ``metadata.widgets`` (empty when not saved)."""
    saved = (metadata.get("widgets") or {}).get(WIDGET_STATE) or {}
    models = saved.get("state") if isinstance(saved, Mapping) else None
    if not isinstance(models, Mapping):
        return {}
    return {str(k): dict(v.get("state") or {}) for k, v in models.items()
            if isinstance(v, Mapping) and isinstance(v.get("state"), Mapping)}


def html_to_text(value: Any) -> str:
    """The text of a widget's HTML value: tags dropped, entities decoded, lines kept."""
    text = _BREAK.sub("\n", str(value or ""))
    return html.unescape(_TAG.sub("", text)).strip()


def _ref(value: Any) -> str | None:
    return value[len("IPY_MODEL_"):] if isinstance(value, str) and value.startswith("IPY_MODEL_") else None


def _progress(state: Mapping[str, Any]) -> str:
    try:
        value, low, high = (float(state.get(k) or 0) for k in ("value", "min", "max"))
    except (TypeError, ValueError):
        return "[progress bar]"
    share = (value - low) / (high - low) if high > low else 0.0
    share = min(max(share, 0.0), 1.0)
    filled = round(share * _BAR)
    return f"|{'█' * filled}{' ' * (_BAR - filled)}|"  # tqdm writes the percentage beside it


def _options(state: Mapping[str, Any]) -> list[str]:
    labels = state.get("_options_labels") or []
    return [f"  ( ) {label}" for label in labels if isinstance(label, str)]


def _leaf(model: str, state: Mapping[str, Any]) -> str:
    description = html_to_text(state.get("description"))
    if model in {"HTMLModel", "HTMLMathModel", "LabelModel"}:
        return html_to_text(state.get("value"))
    if model in {"FloatProgressModel", "IntProgressModel"}:
        return _progress(state)
    if model == "ButtonModel":
        return f"[{description or 'button'}]"
    if model in {"RadioButtonsModel", "SelectMultipleModel", "SelectModel", "DropdownModel",
                 "ToggleButtonsModel"}:
        return "\n".join(_options(state))
    if model in {"TextModel", "TextareaModel", "FloatTextModel", "IntTextModel",
                 "BoundedFloatTextModel", "BoundedIntTextModel"}:
        label = f"{description}: " if description else ""
        return f"{label}[{state.get('value') if state.get('value') not in (None, '') else '...'}]"
    return ""


def _hidden(states: Mapping[str, dict[str, Any]], state: Mapping[str, Any]) -> bool:
    layout = states.get(_ref(state.get("layout")) or "", {})
    return layout.get("display") == "none" or layout.get("visibility") == "hidden"


def _render(model_id: str, states: Mapping[str, dict[str, Any]], depth: int) -> str | None:
    state = states.get(model_id)
    if state is None or depth > _MAX_DEPTH:
        return None
    if _hidden(states, state):
        return ""
    model = str(state.get("_model_name") or "")
    children = [_ref(c) for c in state.get("children") or []]
    if model in {"HBoxModel", "VBoxModel", "BoxModel", "GridBoxModel"}:
        parts = [_render(c, states, depth + 1) for c in children if c]
        if any(p is None for p in parts):
            return None
        joiner = " " if model == "HBoxModel" else "\n"
        return joiner.join(p for p in parts if p).strip()
    return _leaf(model, state)


def widget_text(view: Any, states: Mapping[str, dict[str, Any]]) -> str:
    """The text of one displayed widget from its saved state.

    A widget missing from a notebook that saved widget state was closed before the notebook
    was saved (tqdm's ``leave=False`` bars): JupyterLab shows nothing there, and neither does
    the page (``""``). When no state was saved at all, the page says to open JupyterLab.
    """
    if not states:
        return OPEN_IN_LAB
    model_id = view.get("model_id") if isinstance(view, Mapping) else None
    text = _render(str(model_id), states, 0) if model_id else None
    return (text or "").replace("\u2007", " ")
