"""``url_key``'s own path for the common URL shape gives ``surt.surt``'s key exactly."""

from __future__ import annotations

import socket

import surt  # type: ignore[import-untyped]
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from surt.GoogleURLCanonicalizer import DECIMAL_IP, OCTAL_IP  # type: ignore[import-untyped]

from crawler.surt_key import url_key

_label = st.text("abwW0129-", min_size=1, max_size=5)
_names = st.builds(
    lambda www, labels: www + ".".join(labels),
    st.sampled_from(["", "www.", "www2.", "wwwx.", "WWW."]),
    st.lists(_label, min_size=1, max_size=4),
)
_octet = st.sampled_from(["0", "00", "01", "1", "9", "10", "99", "100", "199", "255", "256", "300"])
_numeric = st.lists(_octet, min_size=1, max_size=5).map(".".join)
_host = st.builds(
    lambda edge, host: edge[0] + host + edge[1],
    st.sampled_from([("", ""), ("", ""), ("", ""), (".", ""), ("", "."), ("", ".."), ("", ":")]),
    st.one_of(_names, _numeric, st.just("localhost")),
).map(lambda h: h.replace("...", ".."))
_port = st.sampled_from(["", "", ":0", ":1", ":80", ":443", ":080", ":8080", ":65535", ":65536"])
_segment = st.sampled_from(
    ["", ".", "..", "...", "a", "B", "page.html", "~u", "x-y_z", "%41", "%2e", "a(b)", "s;x", " "]
)
_path = st.one_of(
    st.just(""),
    st.lists(_segment, min_size=1, max_size=5).map(lambda segs: "/" + "/".join(segs)),
)
_tail = st.sampled_from(["", "", "", "?", "?b=1&a=2", "#frag", "?jsessionid=x"])


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(["http", "https", "HTTP"]), _host, _port, _path, _tail)
@example("http", "127.0.0.1", ":39000", "/wiki/c/p21034.html", "")
@example("https", "www.example.com", ":443", "/A/b/", "")
@example("http", "10.0.0.01", "", "/", "")
@example("http", "127.1", "", "/x", "")
def test_the_common_shape_gets_the_library_s_key(
    scheme: str, host: str, port: str, path: str, tail: str
) -> None:
    url = f"{scheme}://{host}{port}{path}{tail}"
    # the library resolves a numeric host with gethostbyname: one inet_aton takes is parsed
    # locally, any other would be a DNS query (no traffic off this machine in tests)
    name = host.split(":")[0].replace("..", ".").strip(".").lower().encode()
    if DECIMAL_IP.match(name) or OCTAL_IP.match(name):
        try:
            socket.inet_aton(name.decode())
        except OSError:
            assume(False)
    try:
        expected = str(surt.surt(url))
    except ValueError:  # (a port out of range): the library's error, from either path
        try:
            url_key(url)
        except ValueError:
            return
        raise AssertionError(f"{url}: the library refused it, url_key did not") from None
    assert url_key(url) == expected, url
