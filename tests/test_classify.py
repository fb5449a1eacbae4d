"""Clause labels, direction, severity and annotations: what a subscriber reads about one clause."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from monitor.classify import classify_change, label_text, load_taxonomy, summarise_change
from monitor.clauses import ClauseChange, WordSpan
from monitor.errors import ConfigError

DATA = Path(__file__).resolve().parent / "data" / "classify"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

TOPICS = {
    "LICENSE_GRANT": "content_license",
    "LICENSE_SUBLICENSE_TRANSFER": "content_license",
    "LICENSE_DURATION_SURVIVAL": "content_license",
    "LICENSE_PURPOSE_COMMERCIAL": "content_license",
    "NAME_LIKENESS_USE": "content_license",
    "AI_TRAINING_ON_USER_DATA": "ai",
    "AI_NO_TRAINING_COMMITMENT": "ai",
    "AI_OPT_OUT_CONTROL": "ai",
    "AI_INTERACTION_DATA": "ai",
    "AI_OUTPUT_RIGHTS": "ai",
    "AI_THIRD_PARTY_SHARING": "ai",
    "SCRAPING_AND_AI_CRAWLING_RULES": "ai",
    "CONTENT_ACCESS_REVIEW": "privacy",
    "BIOMETRIC_FACE_VOICE": "privacy",
    "RETENTION_AFTER_DELETION": "privacy",
    "UNILATERAL_CHANGE_NOTICE": "contract",
    "DISPUTE_ARBITRATION_CLASS_WAIVER": "contract",
}

LICENCE = (
    "When you share content, you grant us a non-exclusive, royalty-free and worldwide licence to "
    "host, use, distribute, modify, copy and display your content, solely to provide the Service."
)


def modified(before: str, after: str) -> ClauseChange:
    return ClauseChange("modified", ("Your content",), before, after)


def test_taxonomy_has_every_topic_of_the_reference_with_its_group() -> None:
    taxonomy = load_taxonomy()
    assert {t: topic.group for t, topic in taxonomy.topics.items()} == TOPICS
    assert set(taxonomy.groups) == {"content_license", "ai", "privacy", "contract"}
    assert all(topic.why and topic.description for topic in taxonomy.topics.values())


def test_taxonomy_matches_taxonomy_md_when_the_shared_reference_is_present() -> None:
    reference = CORPUS.parent / "TAXONOMY.md"
    if not reference.exists():
        pytest.skip("../shared/TAXONOMY.md not present")
    headings = re.findall(r"^## (\w+) \((\w+)\)$", reference.read_text(), re.MULTILINE)
    assert dict(headings) == TOPICS
    why = dict(
        re.findall(r"^## (\w+) .*?- why it matters: (.+?)$", reference.read_text(), re.M | re.S)
    )
    for tid, text in why.items():
        assert load_taxonomy().topics[tid].why == text.strip()


@pytest.mark.parametrize(
    "case", [json.loads(line) for line in (DATA / "phrasings.jsonl").read_text().splitlines()]
)
def test_phrasings_from_the_taxonomy_get_their_labels(case: dict) -> None:
    labels = label_text(case["text"])
    if case["labels"]:
        assert set(case["labels"]) <= set(labels), labels
    else:
        assert labels == ()


# ToS;DR draft labels -> the topic ids (or a whole group) that count as a hit.
TOSDR_MAP = {
    "LICENSE_SCOPE": {"content_license"},
    "MORAL_RIGHTS_ATTRIBUTION": {"content_license"},
    "LICENSE_PERPETUAL_SURVIVES": {
        "LICENSE_DURATION_SURVIVAL",
        "RETENTION_AFTER_DELETION",
        "content_license",
    },
    "ARBITRATION_CLASS_WAIVER": {"DISPUTE_ARBITRATION_CLASS_WAIVER"},
    "RETENTION_AFTER_DELETION": {"RETENTION_AFTER_DELETION", "LICENSE_DURATION_SURVIVAL"},
    "SCRAPING_RULES": {"SCRAPING_AND_AI_CRAWLING_RULES"},
    "BIOMETRIC": {"BIOMETRIC_FACE_VOICE"},
    "UNILATERAL_CHANGE_NOTICE": {"UNILATERAL_CHANGE_NOTICE"},
}


def _hit(expected: set[str], labels: tuple[str, ...]) -> bool:
    return any(label in expected or TOPICS[label] in expected for label in labels)


def test_tosdr_sample_recall_and_precision() -> None:
    """Measured on the committed sample: recall 0.85 overall, 0.91 on content-licence points,
    0.99 precision of labels on labelled points, 9/100 unlabelled points get some label."""
    points = [json.loads(line) for line in (DATA / "tosdr_sample.jsonl").read_text().splitlines()]
    hits = total = core_hits = core_total = predicted = right = unlabelled = false_alarms = 0
    for point in points:
        expected = [TOSDR_MAP[x] for x in point["monitor_labels"] if x in TOSDR_MAP]
        labels = label_text(point["quoteText"])
        if not expected:
            unlabelled += 1
            false_alarms += bool(labels)
            continue
        for exp in expected:
            total += 1
            hits += _hit(exp, labels)
            if "content_license" in exp:
                core_total += 1
                core_hits += _hit(exp, labels)
        predicted += len(labels)
        right += sum(any(_hit(exp, (label,)) for exp in expected) for label in labels)
    assert total >= 180 and core_total >= 60
    assert core_hits / core_total >= 0.85
    assert hits / total >= 0.8
    assert right / predicted >= 0.9
    assert false_alarms / unlabelled <= 0.15


def test_adding_sublicensable_expands_and_is_high_with_a_plain_annotation() -> None:
    after = LICENCE.replace("non-exclusive,", "non-exclusive, transferable, sub-licensable,")
    change = classify_change(modified(LICENCE, after), service="Instagram")
    assert change.severity == "high"
    assert change.direction == "expands"
    assert {"LICENSE_GRANT", "LICENSE_SUBLICENSE_TRANSFER"} <= set(change.labels)
    assert "sub-licensable" in change.annotation
    assert "Instagram may now pass your content on to other companies" in change.annotation
    assert len(change.annotation) <= 300
    assert summarise_change(change) == "licence now sublicensable"


def test_removing_solely_widens_the_licence() -> None:
    after = LICENCE.replace(", solely to provide the Service", " for any purpose")
    change = classify_change(modified(LICENCE, after))
    assert (change.direction, change.severity) == ("expands", "high")
    assert "for any purpose" in change.annotation


def test_adding_a_purpose_limit_narrows_and_is_medium() -> None:
    before = LICENCE.replace(", solely to provide the Service", "")
    change = classify_change(modified(before, LICENCE))
    assert (change.direction, change.severity) == ("narrows", "medium")


def test_the_differs_word_spans_are_quoted_in_the_annotation() -> None:
    before = "We may use your content to improve our services."
    after = "We may use your content to improve our services and to train artificial intelligence."
    spans = (
        WordSpan("equal", "We may use your content to improve our services"),
        WordSpan("insert", " and to train artificial intelligence"),
        WordSpan("equal", "."),
    )
    change = classify_change(ClauseChange("modified", (), before, after, words=spans))
    assert change.severity == "high" and change.direction == "expands"
    assert "AI_TRAINING_ON_USER_DATA" in change.labels
    assert "'train'" in change.annotation


def test_a_new_ai_training_clause_is_high_and_a_new_no_training_promise_narrows() -> None:
    training = classify_change(
        ClauseChange(
            "added",
            (),
            None,
            "We use public posts and photos to train and improve our generative AI models.",
        )
    )
    assert (training.severity, training.direction) == ("high", "expands")
    assert training.annotation.startswith("New AI training clause")
    promise = classify_change(
        ClauseChange("added", (), None, "We will not use your content to train generative AI.")
    )
    assert (promise.severity, promise.direction) == ("medium", "narrows")


def test_a_removed_no_training_promise_expands() -> None:
    change = classify_change(
        ClauseChange("removed", (), "We never use your content to train AI models.", None),
        service="Acme",
    )
    assert change.labels == ("AI_NO_TRAINING_COMMITMENT",)
    assert (change.severity, change.direction) == ("high", "expands")
    assert "Acme may now be free" in change.annotation


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (LICENCE, LICENCE.replace("licence", "license")),
        ("We organise and analyse your behaviour.", "We organize and analyze your behavior."),
        (LICENCE, LICENCE.replace(", ", ",  ").upper()),
        (
            "See the [Data Policy](https://a.example/x?e=1).",
            "See the [Data Policy](https://b.example/y).",
        ),
        ("Last updated: 3 May 2024", "Last updated: 1 June 2025"),
        ("3. Your content licence", "4. Your content licence"),
    ],
)
def test_cosmetic_edits(before: str, after: str) -> None:
    change = classify_change(modified(before, after))
    assert change.severity == "cosmetic"
    assert change.direction == "neutral"


def test_unlabelled_rewording_is_low_and_privacy_narrowing_is_low() -> None:
    plain = classify_change(
        modified(
            "You must be 13 years old to sign up.", "You must be 16 years old or older to sign up."
        )
    )
    assert (plain.labels, plain.severity) == ((), "low")
    contract = classify_change(
        modified(
            "We may change these Terms at any time without notice.",
            "We may change these Terms, and we will notify you 30 days in advance.",
        )
    )
    assert contract.labels == ("UNILATERAL_CHANGE_NOTICE",)
    assert (contract.direction, contract.severity) == ("narrows", "low")


def test_contract_expansion_is_one_step_below_core_topics() -> None:
    change = classify_change(
        ClauseChange("added", (), None, "All disputes will be resolved by binding arbitration.")
    )
    assert (change.severity, change.direction) == ("medium", "expands")


def test_annotation_is_short_and_free_of_control_characters() -> None:
    hostile = "\x1b[31mYou grant us a royalty-free licence\x07 to your content " + "word " * 200
    change = classify_change(ClauseChange("added", (), None, hostile))
    assert len(change.annotation) <= 300
    assert not re.search(r"[\x00-\x1f]", change.annotation)
    unlabelled = classify_change(ClauseChange("added", (), None, "\x1b]0;pwned\x07 Hello " * 30))
    assert len(unlabelled.annotation) <= 300 and "\x1b" not in unlabelled.annotation


def test_a_bad_taxonomy_file_names_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "taxonomy.toml"
    bad.write_text(
        '[[topic]]\nid = "X"\ngroup = "ai"\ndescription = "d"\nwhy = "w"\n'
        'patterns = [{ re = "(unclosed", weight = 1.0 }]\n'
    )
    with pytest.raises(ConfigError, match=r"taxonomy.toml: X.patterns\[0\]: bad regex"):
        load_taxonomy(bad)
    bad.write_text('[[topic]]\nid = "X"\ngroup = "ai"\ndescription = "d"\n')
    with pytest.raises(ConfigError, match=r"topic\[0\].why"):
        load_taxonomy(bad)


def test_a_custom_taxonomy_extends_without_code(tmp_path: Path) -> None:
    custom = tmp_path / "taxonomy.toml"
    custom.write_text(
        '[[topic]]\nid = "CRYPTO"\ngroup = "contract"\ndescription = "d"\nwhy = "Money."\n'
        'patterns = [{ re = "\\\\bcrypto", weight = 1.0 }]\n'
    )
    taxonomy = load_taxonomy(custom)
    assert label_text("We accept crypto payments.", taxonomy) == ("CRYPTO",)
    assert label_text("We accept cards.", taxonomy) == ()


# --- real before/after pairs: labels, direction and wording --------------------------------------

SEVERITY_ORDER = ("cosmetic", "low", "medium", "high")


def _jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


META_PAIRS = _jsonl("meta_pairs.jsonl")
DEVSET = _jsonl("devset.jsonl")


def _change(case: dict) -> ClauseChange:
    return ClauseChange(
        case["kind"], tuple(case.get("section", ())), case.get("before"), case.get("after")
    )


@pytest.mark.parametrize("case", META_PAIRS, ids=[c["id"] for c in META_PAIRS])
def test_real_meta_pairs_get_their_labels_direction_and_wording(case: dict) -> None:
    """Hand-checked clause pairs from Instagram and Facebook histories (see each case's note)."""
    got = classify_change(_change(case), service="Instagram")
    expect = case["expect"]
    assert set(case["labels"]) | set(expect.get("labels", ())) <= set(got.labels), got
    assert not set(expect.get("not_labels", ())) & set(got.labels), got
    if case["real"] and case["direction"]:
        assert got.direction == case["direction"], got
    assert got.direction not in expect.get("direction_not", ()), got
    rank = SEVERITY_ORDER.index(got.severity)
    assert rank >= SEVERITY_ORDER.index(expect.get("severity_at_least", "cosmetic")), got
    assert rank <= SEVERITY_ORDER.index(expect.get("severity_at_most", "high")), got
    if case["real"]:
        assert rank >= SEVERITY_ORDER.index("medium"), got
    for phrase in expect.get("annotation_not", ()):
        assert phrase not in got.annotation, got.annotation


def _score(real: list[dict], non: list[dict]) -> tuple[int, int, int]:
    """Real changes found at medium+ with one of their labels, of those with the right direction,
    and non-changes raised to medium+ (a false alarm)."""
    found = right = 0
    for case in real:
        got = classify_change(_change(case))
        if got.severity in ("medium", "high") and set(got.labels) & set(case["labels"]):
            found += 1
            right += got.direction == case["direction"]
    alarms = sum(classify_change(_change(c)).severity in ("medium", "high") for c in non)
    return found, right, alarms


def test_devset_of_other_services_recall_direction_and_false_alarms() -> None:
    """tests/data/classify/devset.jsonl: 63 real AI/licence changes and 109 non-changes from 15
    other services, hand-labelled. Measured: recall 1.00, direction 0.92, false alarms 0.00
    (0.97, 0.90, 0.03 before the rules for descriptions of AI and promises not to collect for
    training; 0.60, 0.71, 0.17 before the rules for output rights, pointers and headings)."""
    real = [c for c in DEVSET if c["real"]]
    non = [c for c in DEVSET if not c["real"]]
    assert len(real) >= 60 and len(non) >= 100
    found, right, alarms = _score(real, non)
    assert found / len(real) >= 0.95
    assert right / found >= 0.9
    assert alarms / len(non) <= 0.02


# --- the ToS;DR licence dev sample: grants, survival, likeness, scraping in other words -----------

LICENCE_DEV = _jsonl("tosdr_licence_dev.jsonl")
LICENCE_DEV_BY_ID = {case["id"]: case for case in LICENCE_DEV}


def test_licence_dev_sample_is_well_formed_attributed_and_not_held_out() -> None:
    topics = set(load_taxonomy().topics)
    heldout_ids = {json.loads(line)["id"] for line in (DATA / "heldout_tosdr.jsonl").open()}
    ids = [case["id"] for case in LICENCE_DEV]
    assert len(ids) == len(set(ids)) and not set(ids) & heldout_ids
    for case in LICENCE_DEV:
        assert set(case) == set(DEVSET[0]), case["id"]
        assert case["kind"] == "added" and case["before"] is None and case["after"], case["id"]
        assert case["old"] == case["new"] == "clauses/tosdr_points_2021.jsonl", case["id"]
        assert "CC BY-SA" in case["attribution"] and case["note"], case["id"]
        assert set(case["labels"]) <= topics, case["id"]
        if case["real"]:
            assert case["labels"] and case["direction"] in ("expands", "narrows"), case["id"]
        else:
            assert case["labels"] == [] and case["direction"] == "neutral", case["id"]
    assert sum(c["real"] for c in LICENCE_DEV) >= 150
    assert sum(not c["real"] for c in LICENCE_DEV) >= 200


def test_licence_dev_sample_recall_direction_and_false_alarms() -> None:
    """tests/data/classify/tosdr_licence_dev.jsonl, ToS;DR quotes as added clauses. Measured:
    recall 182/186, direction 182/182, false alarms 4/277 (before issue 8's rules: 128/186,
    123/128, 20/277)."""
    real = [c for c in LICENCE_DEV if c["real"]]
    non = [c for c in LICENCE_DEV if not c["real"]]
    found, right, alarms = _score(real, non)
    assert found / len(real) >= 0.95
    assert right / found >= 0.95
    assert alarms / len(non) <= 0.05


# One case per wording family the rules had never seen (each missed, misread or falsely raised
# before issue 8): grants without "licence" or "grant", ownership handed over, survival without
# "perpetual", name / likeness lists, content in advertising, promises not to sell or share,
# imperative scraping rules, grants next to "we don't claim ownership", and non-changes.
NEW_WORDINGS = (
    "tosdr-9903",  # "Vimeo may use your suggestions without any compensation to you"
    "tosdr-8924",  # "Zapier shall be free to reproduce, use, disclose, and distribute"
    "tosdr-6751",  # "your submission will become the property of SONIC"
    "tosdr-10432",  # "you grant us sole ownership of the same"
    "tosdr-7780",  # "may be edited, removed, modified, published ... and displayed by NYT"
    "tosdr-9876",  # "you agree to do it under appropriate free licenses"
    "tosdr-7693",  # "You agree not to assert any moral rights"
    "tosdr-4513",  # "you agree to allow others to view, edit, and/or share your User Content"
    "tosdr-12688",  # "a right to transfer these rights ... to the third-parties"
    "tosdr-9699",  # "will be publicly and permanently available"
    "tosdr-10553",  # "You hereby grant Blizzard a perpetual,"
    "tosdr-7381",  # "consent to use the User Content ... name, likeness, voice or persona"
    "tosdr-12370",  # "pictures and video ... as part of our advertising and marketing campaigns"
    "tosdr-5551",  # "We may also use your Content to promote the Services."
    "tosdr-5552",  # "We will never sell your content to third parties" (narrows)
    "tosdr-4411",  # "does not sell, rent or monetize your personal data or content" (narrows)
    "tosdr-7281",  # "We don't share your content" (narrows)
    "tosdr-6744",  # "you grant Etsy a license ... We don't claim any ownership" (expands)
    "tosdr-8389",  # licence "only for the limited purposes" after an ownership disclaimer (expands)
    "tosdr-5566",  # "Don't use any kind of software ... to crawl" (a rule for the user: expands)
    "tosdr-12271",  # "any automated system, including ... robots, spiders and offline readers"
    "tosdr-8014",  # "automated tools to access this website will result in a ... block"
    "tosdr-5457",  # "You retain full ownership to your Content." (no grant)
    "tosdr-5994",  # the site's own Creative Commons notice
    "tosdr-11557",  # the Terms "are not assignable, transferable or sublicensable by you"
    "tosdr-11785",  # cookies and web beacons "using automated means" (privacy, not scraping)
    "tosdr-8580",  # the user's own software licence ends
    "tosdr-10592",  # moderation: "review, reject, delete, remove, modify, or edit any User Content"
)


@pytest.mark.parametrize("case_id", NEW_WORDINGS)
def test_new_licence_wordings_get_their_topic_and_direction(case_id: str) -> None:
    case = LICENCE_DEV_BY_ID[case_id]
    got = classify_change(_change(case))
    if case["real"]:
        assert got.severity in ("medium", "high"), got
        assert set(got.labels) & set(case["labels"]), got
        assert got.direction == case["direction"], got
    else:
        assert not set(got.labels) & {
            "LICENSE_GRANT",
            "LICENSE_SUBLICENSE_TRANSFER",
            "LICENSE_DURATION_SURVIVAL",
            "LICENSE_PURPOSE_COMMERCIAL",
            "NAME_LIKENESS_USE",
            "SCRAPING_AND_AI_CRAWLING_RULES",
        }, got


# The same families written afresh (not quotes): what a platform could write next.
WRITTEN_WORDINGS = [
    (
        "By submitting a review, you authorise the publisher to reproduce, translate and "
        "distribute it.",
        "LICENSE_GRANT",
        "expands",
    ),
    (
        "You give the company permission to display and share what you upload.",
        "LICENSE_GRANT",
        "expands",
    ),
    (
        "You agree that we may reproduce, publish and translate the articles you send us.",
        "LICENSE_GRANT",
        "expands",
    ),
    (
        "The service may keep using your posts after you close your account.",
        "LICENSE_DURATION_SURVIVAL",
        "expands",
    ),
    (
        "The company is entitled to go on using your contributions after your account is deleted.",
        "LICENSE_DURATION_SURVIVAL",
        "expands",
    ),
    ("This licence may not be revoked by you.", "LICENSE_DURATION_SURVIVAL", "expands"),
    (
        "You allow us to use your name, photo and biography in connection with promotions.",
        "NAME_LIKENESS_USE",
        "expands",
    ),
    (
        "Photos you share may appear in our advertising campaigns, online and offline.",
        "LICENSE_PURPOSE_COMMERCIAL",
        "expands",
    ),
    ("We will never sell the photos you upload.", "LICENSE_PURPOSE_COMMERCIAL", "narrows"),
    (
        "If you don't want your name and profile photo to appear next to ads, change your ad "
        "settings.",
        "NAME_LIKENESS_USE",
        "narrows",
    ),
    (
        "Do not use bots or scripts to copy listings from the site.",
        "SCRAPING_AND_AI_CRAWLING_RULES",
        "expands",
    ),
]


@pytest.mark.parametrize(("text", "label", "direction"), WRITTEN_WORDINGS)
def test_written_licence_wordings_get_their_topic_and_direction(
    text: str, label: str, direction: str
) -> None:
    got = classify_change(ClauseChange("added", ("Your content",), None, text))
    assert label in got.labels, got
    assert (got.severity in ("medium", "high"), got.direction) == (True, direction), got


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("4.2 If", "5.2 If"),
        ("property of Acme,", "property of Acme Inc.,"),
        ("send F", "send us F"),
    ],
)
def test_a_few_words_edited_in_a_licence_clause_worded_the_new_ways_stay_low(
    old: str, new: str
) -> None:
    """The wider rules recognise this clause as a licence; a renumbering, a renamed party or a
    pronoun added is still no licence change."""
    before = (
        "4.2 If you send Feedback to Acme, Acme shall be free to reproduce, use, disclose and "
        "distribute it without compensation to you, and your Feedback becomes the property of "
        "Acme, which is entitled to continue using it after your account is closed."
    )
    got = classify_change(modified(before, before.replace(old, new)))
    assert {"LICENSE_GRANT", "LICENSE_DURATION_SURVIVAL"} <= set(got.labels)
    assert got.severity in ("cosmetic", "low"), got


# --- the held-out set: well-formed and really held out (scores: bench/, not here) -----------------

HELDOUT = {name: _jsonl(name) for name in ("heldout.jsonl", "heldout_tosdr.jsonl")}
HELDOUT_CASES = [case for cases in HELDOUT.values() for case in cases]


def test_heldout_cases_are_well_formed_and_labelled_with_taxonomy_topics() -> None:
    topics = set(load_taxonomy().topics)
    ids = [c["id"] for c in HELDOUT_CASES]
    assert len(ids) == len(set(ids)), "duplicate ids"
    assert not set(ids) & {c["id"] for c in DEVSET}
    for case in HELDOUT_CASES:
        assert set(case) == set(DEVSET[0]), case["id"]
        assert case["kind"] in ("added", "removed", "modified", "moved"), case["id"]
        assert (case["before"] is None) == (case["kind"] == "added"), case["id"]
        assert (case["after"] is None) == (case["kind"] == "removed"), case["id"]
        assert set(case["labels"]) <= topics, case["id"]
        assert case["note"] and case["attribution"], case["id"]
        if case["real"]:
            assert case["labels"] and case["direction"] in ("expands", "narrows"), case["id"]
        else:
            assert case["labels"] == [] and case["direction"] == "neutral", case["id"]
    assert all(c["attribution"].startswith("Open Terms Archive") for c in HELDOUT["heldout.jsonl"])
    assert all("CC BY-SA" in c["attribution"] for c in HELDOUT["heldout_tosdr.jsonl"])
    assert sum(c["real"] for c in HELDOUT_CASES) >= 40
    assert sum(not c["real"] for c in HELDOUT_CASES) >= 60


def _words(text: str) -> str:
    import html

    return " ".join(re.findall(r"\w+", html.unescape(re.sub(r"<[^>]*>?", " ", text)).lower()))


def test_heldout_pairs_come_from_their_sources_and_from_no_devset_transition() -> None:
    """Every versions-more pair is a clause of its old / new capture, from a transition that
    overlaps no devset transition of the same document; every ToS;DR quote is its point's text and
    not one of tosdr_sample.jsonl."""
    if not CORPUS.exists():
        pytest.skip("../shared/corpus not present")
    from monitor.extract import extract_clauses

    texts: dict[str, set[str]] = {}

    def clause_texts(path: str) -> set[str]:
        if path not in texts:
            markdown = (CORPUS / path).read_text()
            texts[path] = {c.text for c in extract_clauses(markdown, media_type="text/markdown")}
        return texts[path]

    devset_spans: dict[str, list[tuple[str, str]]] = {}
    for case in DEVSET:
        document, old_file = case["old"].rsplit("/", 1)
        devset_spans.setdefault(document, []).append((old_file, case["new"].rsplit("/", 1)[1]))
    devset_pairs = {(c["before"], c["after"]) for c in DEVSET}
    for case in HELDOUT["heldout.jsonl"]:
        document, old_file = case["old"].rsplit("/", 1)
        new_document, new_file = case["new"].rsplit("/", 1)
        assert document == new_document and old_file < new_file, case["id"]
        for start, end in devset_spans.get(document, []):
            assert new_file <= start or old_file >= end, (case["id"], start, end)
        assert (case["before"], case["after"]) not in devset_pairs, case["id"]
        if case["before"] is not None:
            assert case["before"] in clause_texts(case["old"]), case["id"]
        if case["after"] is not None:
            assert case["after"] in clause_texts(case["new"]), case["id"]

    points = {}
    for line in (CORPUS / "clauses" / "tosdr_points_2021.jsonl").read_text().splitlines():
        point = json.loads(line)
        points[point["id"]] = point
    sample = {json.loads(line)["id"] for line in (DATA / "tosdr_sample.jsonl").open()}
    for case in HELDOUT["heldout_tosdr.jsonl"]:
        point_id = case["id"].removeprefix("tosdr-")
        assert point_id not in sample, case["id"]
        assert case["old"] == case["new"] == "clauses/tosdr_points_2021.jsonl", case["id"]
        quote = _words(points[point_id]["quoteText"])
        assert _words(case["after"]) and _words(case["after"]) in quote, case["id"]


_CLAIMED_REMOVED = re.compile(r"(?:Removes|Drops) '([^']+)'|\(drops '([^']+)'\)|\('([^']+)' →")
_CLAIMED_ADDED = re.compile(r"Adds '([^']+)'|\(adds '([^']+)'\)|→ '([^']+)'\)")


def _present(phrase: str, text: str | None) -> bool:
    """Whether the words of ``phrase`` (a quote, '…' marking cuts) appear in order in ``text``."""
    from monitor import noise

    line = " " + " ".join(noise.words(text or "")) + " "
    for part in phrase.split("…"):
        needle = " ".join(noise.words(part))
        if needle and f" {needle} " in line:
            return True
    return False


def _quoted(pattern: re.Pattern[str], annotation: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in pattern.finditer(annotation)]


def _every_real_pair() -> list[ClauseChange]:
    from monitor.diff import diff_clauses
    from monitor.extract import extract_clauses

    changes = [_change(c) for c in META_PAIRS + DEVSET]
    events = DATA / "events"
    for event in _jsonl("events/events.jsonl"):
        old, new = (
            extract_clauses((events / event[k]).read_text(), media_type="text/markdown")
            for k in ("old", "new")
        )
        changes += [c for c in diff_clauses(old, new) if c.kind == "modified"]
    return changes


def test_no_annotation_claims_a_removal_or_addition_its_clause_contradicts() -> None:
    """Over every real pair we keep (Meta events, Meta pairs, the devset: about 700 clause
    changes): a phrase an annotation says was removed is absent from the new text, a phrase it
    says was added is absent from the old one."""
    checked = 0
    for change in _every_real_pair():
        annotation = classify_change(change).annotation
        for phrase in _quoted(_CLAIMED_REMOVED, annotation):
            checked += 1
            assert not _present(phrase, change.after), (phrase, annotation, change.after)
        for phrase in _quoted(_CLAIMED_ADDED, annotation):
            checked += 1
            assert not _present(phrase, change.before), (phrase, annotation, change.before)
    assert checked >= 100


def test_a_cue_still_present_in_the_new_clause_is_not_called_removed() -> None:
    before = "Interactions with AI at Meta and related metadata, like content and messages."
    after = "Interactions with our features that are part of AI at Meta and related metadata."
    change = classify_change(modified(before, after))
    assert "no longer mentions AI" not in change.annotation
    assert change.direction != "narrows"
    notify = "We will notify you at least 30 days before we make changes to these Terms."
    change = classify_change(modified(notify + " " + notify, notify))
    assert "Removes 'we will notify'" not in change.annotation


# --- headline and facts ---------------------------------------------------------------------------


def test_the_headline_states_the_fact_of_the_top_change_with_dates_and_ways_to_say_no() -> None:
    from monitor.classify import find_facts, headline_for

    after = (
        "We'll use public posts and comments from adults to develop and improve generative AI "
        "models for AI at Meta. These changes take effect on June 26, 2024. You can object "
        "until 26 June 2024 using [this form](https://help.example.org/object-ai), or in "
        "Settings > Privacy > AI at Meta."
    )
    changes = [
        classify_change(ClauseChange("added", ("AI",), None, after)),
        classify_change(modified("Our offices are in Dublin.", "Our offices are in Cork.")),
    ]
    facts = find_facts([after])
    assert facts.dates == ("effective June 26, 2024", "until 26 June 2024")
    assert facts.deadline == "26 June 2024"
    assert facts.opt_outs == (
        "https://help.example.org/object-ai",
        "Settings > Privacy > AI at Meta",
    )
    assert headline_for(changes, service="Instagram", facts=facts) == (
        "Instagram may now use your public posts and comments to train or improve AI; you can "
        "object until 26 June 2024; effective June 26, 2024"
    )
    # a date or route the old version already gave is not news
    assert find_facts([after], old_texts=(after,)) == type(facts)()


def test_the_headline_is_plain_when_only_wording_changed_and_keeps_direction_honest() -> None:
    from monitor.classify import headline_for

    cosmetic = classify_change(modified(LICENCE, LICENCE.replace("licence", "license")))
    assert headline_for([cosmetic], service="Instagram") == (
        "Instagram: wording or layout changes only; nothing that changes your rights"
    )
    pause = classify_change(
        ClauseChange(
            "added",
            (),
            None,
            "Based on feedback from regulators, we're delaying our change to the use of your "
            "information to develop and improve AI at Meta.",
        )
    )
    assert pause.direction == "narrows"
    assert headline_for([pause], service="Instagram") == (
        "Instagram holds back its use of your information for AI"
    )
    reworded = classify_change(
        modified(
            "We may share your chats with the AI assistant with our moderators.",
            "We may share your chats with the AI assistant with our moderation team.",
        )
    )
    assert reworded.direction == "neutral"
    headline = headline_for([reworded], service="Acme")
    assert "widens" not in headline and "narrows" not in headline and "may now" not in headline
    dropped = classify_change(
        modified("We use your posts to train AI models.", "We use your posts to improve AI models.")
    )
    assert headline_for([dropped], service="Acme") == (
        "Acme: The clause no longer mentions training AI on your content"
    )


def test_a_date_without_a_way_to_object_is_no_deadline() -> None:
    from monitor.classify import find_facts

    facts = find_facts(["Payments are due by 1 March 2025 for the annual plan."])
    assert (facts.deadline, facts.dates, facts.opt_outs) == ("", (), ())


@pytest.mark.parametrize(
    ("before", "after", "label", "direction"),
    [
        (  # an AI feature switched on by default: the opt-in became an opt-out
            "Acme AI is off until you turn it on in Settings.",
            "Acme AI is on by default; you can turn it off in Settings > AI.",
            "AI_OPT_OUT_CONTROL",
            "expands",
        ),
        (
            None,
            "We may allow third parties to train their machine learning models on public user "
            "content.",
            "AI_THIRD_PARTY_SHARING",
            "expands",
        ),
        (None, "* Your content isn't used to train AI.", "AI_NO_TRAINING_COMMITMENT", "narrows"),
        (
            None,
            "You own the images you create with Acme AI, and we claim no rights in them.",
            "AI_OUTPUT_RIGHTS",
            "narrows",
        ),
        ("* Your content isn't used to train AI.", None, "AI_NO_TRAINING_COMMITMENT", "expands"),
    ],
)
def test_new_wording_default_on_third_party_training_output_ownership_short_promises(
    before: str | None, after: str | None, label: str, direction: str
) -> None:
    kind = "modified" if before and after else "added" if after else "removed"
    change = classify_change(ClauseChange(kind, (), before, after), service="Acme")  # type: ignore[arg-type]
    assert label in change.labels
    assert (change.direction, change.severity in ("medium", "high")) == (direction, True)
    if kind == "added" and direction == "narrows":
        assert not change.annotation.startswith("New AI training clause")


REPLAY_PAIRS = _jsonl("replay_pairs.jsonl")


@pytest.mark.parametrize("case", REPLAY_PAIRS, ids=[c["id"] for c in REPLAY_PAIRS])
def test_replayed_histories_of_other_services_keep_real_changes_and_drop_the_rest(
    case: dict,
) -> None:
    """Clauses of the medium+ change records that replaying versions-more raised (hand-labelled in
    more_replay_labels.jsonl): the non-changes (renamed sections, cookie lifetimes, passkeys,
    messaging bots, descriptions of AI ...) stay below medium, real changes stay medium or above,
    and no direction or annotation says what the words do not."""
    got = classify_change(_change(case), service=case["old"].split("/")[1])
    expect = case["expect"]
    rank = SEVERITY_ORDER.index(got.severity)
    assert rank <= SEVERITY_ORDER.index(expect.get("severity_at_most", "high")), got
    if case["real"]:
        assert rank >= SEVERITY_ORDER.index("medium"), got
        assert set(case["labels"]) <= set(got.labels), got
    if case["direction"]:
        assert got.direction == case["direction"], got
    assert got.direction not in expect.get("direction_not", ()), got
    for phrase in expect.get("annotation_not", ()):
        assert phrase not in got.annotation, got.annotation
    for phrase in expect.get("annotation_has", ()):
        assert phrase in got.annotation, got.annotation
