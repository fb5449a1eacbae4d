"""The built-in catalog: valid, unique, Meta first, and broad enough."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

from monitor.catalog import catalog_documents
from monitor.config import url_problem

META_DOCUMENTS = {
    "instagram/terms-of-service",
    "instagram/privacy-policy",
    "facebook/terms-of-service",
    "facebook/privacy-policy",
    "meta/privacy-policy",
    "meta-ai/terms-of-service",
    "threads/terms-of-service",
    "threads/privacy-policy",
    "whatsapp/terms-of-service",
    "whatsapp/privacy-policy",
}
META_SERVICES = {"Instagram", "Facebook", "Meta", "Meta AI", "Threads", "WhatsApp", "Llama API"}


def test_ids_are_unique() -> None:
    ids = Counter(doc.id for doc in catalog_documents())
    assert [doc_id for doc_id, n in ids.items() if n > 1] == []


def test_no_page_is_tracked_twice() -> None:
    urls = Counter(doc.url for doc in catalog_documents())
    assert [url for url, n in urls.items() if n > 1] == []


def test_urls_are_valid_https() -> None:
    for doc in catalog_documents():
        assert url_problem(doc.url) is None, doc.id
        assert urlsplit(doc.url).scheme == "https", doc.id
        assert "#" not in doc.url, doc.id


def test_every_meta_document_is_present_and_first() -> None:
    documents = catalog_documents()
    ids = [doc.id for doc in documents]
    assert set(ids) >= META_DOCUMENTS
    meta_count = sum(doc.service in META_SERVICES for doc in documents)
    assert all(doc.service in META_SERVICES for doc in documents[:meta_count])


def test_at_least_twenty_other_services_with_terms_and_privacy() -> None:
    by_service: dict[str, set[str]] = {}
    for doc in catalog_documents():
        if doc.service not in META_SERVICES:
            by_service.setdefault(doc.service, set()).add(doc.type)
    assert len(by_service) >= 20
    both = [s for s, types in by_service.items() if len(types) >= 2]
    assert len(both) >= 20
    for wanted in ("X", "Google", "TikTok", "OpenAI", "Claude", "Google Gemini", "Mistral AI"):
        assert wanted in by_service


def test_entries_are_complete() -> None:
    for doc in catalog_documents():
        assert doc.service and doc.type, doc
        assert doc.interval is None, doc.id  # catalog entries follow the daemon default
        assert all(s.strip() == s and s for s in doc.select + doc.remove), doc.id


def test_client_rendered_declarations_need_a_browser() -> None:
    by_id = {doc.id: doc for doc in catalog_documents()}
    assert by_id["instagram/terms-of-service"].render is True
    assert by_id["instagram/terms-of-service"].select == ('div[role="main"]',)
    assert by_id["whatsapp/terms-of-service"].render is False
    assert by_id["whatsapp/terms-of-service"].select == ("#content-wrapper",)
