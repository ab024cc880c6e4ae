"""Finding what a built page would fetch from the network."""
from __future__ import annotations

from tlcourse.course.site.offline import drop_thebe, page_assets, remote_assets


def test_loaded_assets_are_found_links_to_follow_are_not():
    page = ('<script src="https://cdn.example.org/mathjax.js"></script>'
            '<link rel="stylesheet" href="//fonts.example.com/x.css">'
            '<img src="_images/a.png"><a href="https://pytorch.org">docs</a>'
            '<div style="background: url(https://x.example.net/b.png)"></div>'
            '<script>const U = "https://unpkg.com/thebe@0.8.2/lib/index.js"</script>')
    assert page_assets(page) == ["https://cdn.example.org/mathjax.js", "//fonts.example.com/x.css",
                                 "_images/a.png", "https://x.example.net/b.png",
                                 "https://unpkg.com/thebe@0.8.2/lib/index.js"]


def test_remote_assets_of_a_site_and_thebe_dropped(tmp_path):
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "sphinx-thebe.js").write_text("loadThebe()")
    (tmp_path / "_static" / "theme.css").write_text("@import 'https://fonts.example.com/a.css';")
    (tmp_path / "index.html").write_text(
        '<script>const THEBE_JS_URL = "https://unpkg.com/thebe@0.8.2/lib/index.js"; const a = 1</script>\n'
        '<script async="async" src="_static/sphinx-thebe.js?v=c100c467"></script>\n<p>hi</p>')
    assert len(remote_assets(tmp_path)) == 2
    drop_thebe(tmp_path)
    assert remote_assets(tmp_path) == [("_static/theme.css", "https://fonts.example.com/a.css")]
    assert (tmp_path / "index.html").read_text() == "<p>hi</p>"
