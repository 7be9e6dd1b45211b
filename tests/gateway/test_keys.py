"""API keys and their rules: a request's headers tighten a key's rules and never loosen them
(a property over every key and header), and a bad keys file is refused naming line and field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heddle.gateway import GatewayError, KeysFileError, load_keys
from heddle.gateway.keys import PRIVACY_ORDER, KeyEntry, KeyRing
from heddle.models.ids import Privacy, Tier


def ring(**entry) -> tuple[KeyRing, str]:
    fields = {"key": "sk-test-0001", "owner": "ana", **entry}
    return KeyRing([KeyEntry(**fields)]), "Bearer " + fields["key"]


@given(key_privacy=st.sampled_from(Privacy), asked=st.none() | st.sampled_from(Privacy),
       deadline=st.none() | st.floats(1, 1000), asked_deadline=st.none() | st.floats(1, 1000))
def test_headers_never_loosen_a_keys_privacy_or_deadline(key_privacy, asked, deadline, asked_deadline):
    keys, auth = ring(privacy=key_privacy, deadline_s=deadline)
    headers = {}
    if asked is not None:
        headers["x-heddle-privacy"] = asked.value
    if asked_deadline is not None:
        headers["x-heddle-deadline"] = repr(asked_deadline)
    try:
        rules = keys.rules(keys.caller(auth), headers, max_wait_s=5)
    except GatewayError as exc:
        assert exc.status == 403
        assert (asked is not None and PRIVACY_ORDER[asked] < PRIVACY_ORDER[key_privacy]) or (
            deadline is not None and asked_deadline is not None and asked_deadline > deadline)
        return
    assert PRIVACY_ORDER[rules.privacy] >= PRIVACY_ORDER[key_privacy]
    assert rules.privacy == (asked or key_privacy) and rules.owner == "ana"
    if deadline is not None:
        assert rules.deadline_s is not None and rules.deadline_s <= deadline


def test_rules_refuse_bad_headers_and_keys_in_words():
    keys, auth = ring(tiers=["local"], account="home")
    caller = keys.caller(auth)
    rules = keys.rules(caller, {"x-heddle-tier": "LOCAL", "x-heddle-max-wait": "99"}, max_wait_s=5)
    assert (rules.tier, rules.account, rules.max_wait_s) == (Tier.LOCAL, "home", 5)
    for headers, words in [({"x-heddle-tier": "frontier"}, "frontier is not allowed for this key"),
                           ({"x-heddle-privacy": "secret"}, "expected one of public, sensitive, personal"),
                           ({"x-heddle-deadline": "soon"}, "expected a number of seconds > 0"),
                           ({"x-heddle-max-wait": "-1"}, "expected a number of seconds >= 0")]:
        with pytest.raises(GatewayError, match=words):
            keys.rules(caller, headers, max_wait_s=5)
    for header, api_key, code in [(None, None, "missing_api_key"), ("Bearer sk-other-0001", None, "invalid_api_key"),
                                  ("Basic sk-test-0001", None, "missing_api_key"), (None, "sk-other-0001", "invalid_api_key"),
                                  ("Bearer sk-other-0001", "sk-test-0001", "invalid_api_key"), (None, " ", "missing_api_key")]:
        with pytest.raises(GatewayError) as refused:
            keys.caller(header, api_key)
        assert (refused.value.status, refused.value.code) == (401, code)
    # Anthropic's clients send X-API-Key; a Bearer header, when given, is the one read
    assert keys.caller(None, "sk-test-0001") == keys.caller("Basic x", "sk-test-0001") == caller


def test_a_bad_keys_file_is_refused_naming_the_line_and_field(tmp_path):
    path = tmp_path / "keys.yaml"
    with pytest.raises(KeysFileError, match="cannot read gateway keys file"):
        load_keys(path)
    path.write_text("keys:\n  - key: sk-ana-00001\n    owner: ana\n    privacy: secret\n")
    with pytest.raises(KeysFileError, match=r"keys.yaml:4: keys\[0\].privacy: Input should be .public"):
        load_keys(path)
    path.write_text("keys:\n  - {key: sk-ana-00001, owner: ana}\n  - {key: sk-ana-00001, owner: bo}\n")
    with pytest.raises(KeysFileError, match="listed twice"):
        load_keys(path)
    path.write_text("keys:\n  - {key: sk-ana-00001, owner: ana, privacy: personal, account: ana}\n")
    assert load_keys(path).caller("Bearer sk-ana-00001").privacy is Privacy.PERSONAL
