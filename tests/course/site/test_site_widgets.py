"""Widget outputs as text, from the widget state saved in the notebook."""
from __future__ import annotations

from tlcourse.course.site.widgets import OPEN_IN_LAB, html_to_text, widget_states, widget_text


def _state(**models):
    return {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {
        mid: {"model_name": s["_model_name"], "state": s} for mid, s in models.items()}}}}


def test_a_finished_tqdm_bar_reads_as_its_text_and_a_full_bar():
    states = widget_states(_state(
        box={"_model_name": "HBoxModel", "children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]},
        l={"_model_name": "HTMLModel", "value": "epoch\u20071:\u2007100%"},
        p={"_model_name": "FloatProgressModel", "value": 4.0, "max": 4.0, "min": 0.0},
        r={"_model_name": "HTMLModel", "value": "4/4 [00:01&lt;00:00]"},
    ))
    assert widget_text({"model_id": "box"}, states) == "epoch 1: 100% |" + "█" * 20 + "| 4/4 [00:01<00:00]"


def test_a_question_reads_as_prompt_options_and_buttons_hidden_ones_left_out():
    states = widget_states(_state(
        box={"_model_name": "VBoxModel", "children": ["IPY_MODEL_q", "IPY_MODEL_o", "IPY_MODEL_b"]},
        q={"_model_name": "HTMLModel", "value": "<b>[q1]</b> Which layers train?<br><i>(choose one)</i>"},
        o={"_model_name": "RadioButtonsModel", "_options_labels": ["a) all", "b) the head"]},
        b={"_model_name": "HBoxModel", "children": ["IPY_MODEL_c", "IPY_MODEL_h"]},
        c={"_model_name": "ButtonModel", "description": "Check"},
        h={"_model_name": "ButtonModel", "description": "Reveal solution", "layout": "IPY_MODEL_hid"},
        hid={"_model_name": "LayoutModel", "display": "none"},
    ))
    text = widget_text({"model_id": "box"}, states)
    assert text == "[q1] Which layers train?\n(choose one)\n  ( ) a) all\n  ( ) b) the head\n[Check]"


def test_no_saved_state_points_to_jupyterlab_and_a_closed_widget_shows_nothing():
    assert widget_text({"model_id": "gone"}, {}) == OPEN_IN_LAB
    states = widget_states(_state(x={"_model_name": "HTMLModel", "value": "hi"}))
    assert widget_text({"model_id": "gone"}, states) == ""


def test_a_cycle_of_children_ends():
    states = widget_states(_state(a={"_model_name": "VBoxModel", "children": ["IPY_MODEL_a"]}))
    assert widget_text({"model_id": "a"}, states) == ""


def test_html_to_text_drops_tags_and_decodes_entities():
    assert html_to_text("<b>a &lt; b</b><script>x</script>") == "a < bx"
