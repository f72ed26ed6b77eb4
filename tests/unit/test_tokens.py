"""The prompt-size estimator: biased slightly high against real tokenizer counts, fast, no network."""

from __future__ import annotations

import hashlib

import pytest

from lmgate.catalog import tokens
from lmgate.catalog.tokens import (
    billable_chars,
    count_chars,
    estimate_chat_tokens,
    estimate_embedding_tokens,
    estimate_tokens,
    media_tokens,
)
from lmgate.types import ChatRequest, EmbeddingRequest, MediaPart, Message, ResponseFormat, TextPart, Tool, ToolCall

# Samples with their token counts under tiktoken's cl100k_base and o200k_base, counted once with
# the real encodings (this machine has no BPE files, so the heuristic is what runs in the tests).
# KOREAN_000 is an excerpt of the Korean page text that 000's batch prompts carry.
ENGLISH = (
    'The gateway sits between applications and the model providers. It '
    'authenticates each caller, applies their limits and budgets, checks '
    'the prompt against guardrails, looks the answer up in its cache, and '
    'only then picks a deployment and translates the request into the '
    "provider's own wire format. On the way back it counts tokens and "
    'money, so every answer carries its estimated cost. Prices differ by '
    'provider: some charge per million tokens, some per thousand tokens, '
    'and older Gemini models on Vertex AI charge per thousand characters.\n'
)
KOREAN_000 = (
    '[ 위험 요인 ] 고금리 장기화 중동 불안 잠재 달러 강세 심화 가능성 상업용 부동산\n'
    ' 위험 등 이 복합 작용 한다면 경기 회복 기대감 및 투자 심리 가 추가적으로 악화 할 가능성\n'
    ' ● 고금리 장기화 디스인플레이션 지연 으로 美 연준 의 금리 인하 기대감 이 약해지고 , 금리 인하\n'
    ' 시기 를 가늠 중인 중앙 은행 들 도 美 연준 과 통화 정책 격차 의 부작용 을 고려 하면서 주요국\n'
    ' 전반 에서 고금리 기조 장기화 , 수요 · 투자 위축 , 신용 악화 등 부작용 우려\n'
    'ㅇ ( 현황 ) 최근 미국 등 주요국 의 물가 가 반등 하면서 디스인플레이션 경로 가 예상 보다\n'
    ' 험난한 경로 ( bumpy road to disinflation ) 로 진행\n'
    '-\n'
    '-\n'
    '미국 소비자 물가 상승률 ( 전월비 ) 이 금년 1 분기 중 0.3 ~ 0.4 % 를 기록 하여 전년 4 분기\n'
    '0.1 ~ 0.2 % 에 비해 크게 높아진 데다 전년 동월비 기준 으로 도 3 개월 째 반등 \\u003c 표 1 \\u003e\n'
    '유로존 소비자 물가 상승률 ( 전월비 ) 이 금년 2,3 월 에 각각 0.6 % , 0.8 % 로 크게 높아진 가운데 특히\n'
    ' 서비스 물가 가 전년 동월비 기준 으로 4 % 를 자 속상 '
)
KOREAN = (
    '최근 미국을 비롯한 주요국의 물가가 다시 오르면서 디스인플레이션 흐름이 지연되고 있다. 이에 따라 미국 연방준비제도의 금리 '
    '인하 기대감이 약해졌고, 금리 인하 시기를 가늠하던 다른 중앙은행들도 통화정책 격차에 따른 부작용을 고려하지 않을 수 없게 '
    '되었다. 모든 키, 값, 설명은 한국어로 작성하고, 각 셀의 내용과 머리글 사이의 관계가 명확하게 드러나도록 서술하십시오.\n'
)
CODE = (
    'def send_request(fname: str) -> dict:\n'
    '    """Send a single request and return usage/cost info."""\n'
    '    path = os.path.join(REQUESTS_DIR, fname)\n'
    '    with open(path, "r", encoding="utf-8") as f:\n'
    '        payload = json.load(f)\n'
    '    merged = []\n'
    '    for message in payload["messages"]:\n'
    '        if not merged or message["role"] != merged[-1]["role"]:\n'
    '            merged.append(message)\n'
    '        else:\n'
    '            merged[-1]["content"].extend(message["content"])\n'
    '    payload["messages"] = merged\n'
    '    start = time.perf_counter()\n'
    '    resp = requests.post(URL, headers=headers, json=payload, '
    'timeout=120)\n'
    '    resp.raise_for_status()\n'
    '    usage = resp.json().get("usage", {})\n'
    '    return {"file": fname, "cost": usage.get("estimated_cost"), '
    '"latency": time.perf_counter() - start}\n'
)

TRUTH = {  # name: (text, cl100k_base tokens, o200k_base tokens)
    "english": (ENGLISH, 101, 101),
    "korean_000": (KOREAN_000, 549, 366),
    "korean": (KOREAN, 211, 124),
    "code": (CODE, 187, 187),
}


@pytest.fixture(autouse=True)
def heuristic_only(monkeypatch, tmp_path):
    """Point tiktoken's cache at an empty folder, so every test sees the no-BPE-file machine."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("LMGATE_TOKENIZER", raising=False)
    tokens._encoder.cache_clear()
    yield
    tokens._encoder.cache_clear()


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_estimate_is_biased_high_but_close(name):
    text, cl100k, o200k = TRUTH[name]
    est = estimate_tokens(text)
    assert est >= cl100k, (name, est, cl100k)
    assert est >= o200k
    assert est <= 1.35 * cl100k, (name, est, cl100k)


def test_korean_counts_about_one_and_a_half_tokens_a_syllable():
    syllables = sum(1 for ch in KOREAN if "\uac00" <= ch <= "\ud7a3")
    assert 1.2 * syllables <= estimate_tokens(KOREAN) <= 2.0 * syllables


def test_cjk_and_other_scripts_are_counted():
    assert estimate_tokens("今天天气很好,我们一起去公园散步吧。") >= 22  # cl100k: 22
    assert estimate_tokens("В последние годы технологии развиваются.") >= 20  # cl100k: 20
    assert estimate_tokens("Hello 😊🎉🚀") >= 9  # cl100k: 9


def test_small_and_odd_inputs():
    assert estimate_tokens("") == 0
    assert estimate_tokens("hi") >= 1
    assert estimate_tokens(" ") >= 0
    assert estimate_tokens("\ud800 lone surrogate") >= 2  # never raises
    assert estimate_tokens(ENGLISH * 2) > estimate_tokens(ENGLISH)


def test_long_text_grows_linearly():
    one = estimate_tokens(ENGLISH)
    assert abs(estimate_tokens(ENGLISH * 100) - 100 * one) <= 100


# ---------------------------------------------------------------- tiktoken, only from its cache


def test_no_bpe_file_means_heuristic_and_no_tiktoken_call(monkeypatch):
    import tiktoken

    def boom(*a, **k):
        raise AssertionError("tiktoken must not be asked to load (it would try to download)")

    monkeypatch.setattr(tiktoken, "get_encoding", boom)
    assert tokens.tokenizer_name() == "heuristic"
    assert estimate_tokens(ENGLISH) == tokens._heuristic(ENGLISH)


def test_corrupt_bpe_file_is_not_handed_to_tiktoken(monkeypatch, tmp_path):
    import tiktoken

    monkeypatch.setattr(tiktoken, "get_encoding", lambda *a, **k: pytest.fail("would re-download"))
    with open(tokens._tiktoken_cache_file(), "wb") as f:
        f.write(b"not a bpe file")
    assert tokens.preload() == "heuristic"


def test_intact_bpe_file_uses_tiktoken(monkeypatch):
    import tiktoken

    data = b"pretend ranks"
    with open(tokens._tiktoken_cache_file(), "wb") as f:
        f.write(data)
    monkeypatch.setattr(tokens, "_CL100K_SHA256", hashlib.sha256(data).hexdigest())

    class Fake:
        def encode_ordinary(self, text):
            return [0] * 7

    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: Fake())
    assert tokens.preload() == "cl100k_base"
    assert estimate_tokens("anything") == 7
    long = "x " * (tokens.TIKTOKEN_MAX_CHARS + 1)
    assert estimate_tokens(long) == tokens._heuristic(long)  # long texts never wait for tiktoken


def test_env_switch_forces_heuristic(monkeypatch):
    monkeypatch.setenv("LMGATE_TOKENIZER", "heuristic")
    monkeypatch.setattr(tokens, "_tiktoken_cache_file", lambda: pytest.fail("not even looked for"))
    assert tokens.tokenizer_name() == "heuristic"


def test_caching_can_be_off(monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    assert tokens._tiktoken_cache_file() is None
    assert tokens.tokenizer_name() == "heuristic"


# ---------------------------------------------------------------- chat requests


def _chat(*messages: Message, **kw) -> ChatRequest:
    return ChatRequest(model="gpt-4o", messages=list(messages), **kw)


def test_chat_estimate_is_text_plus_per_message_overhead():
    req = _chat(Message("system", [TextPart("You are a pirate.")]), Message("user", [TextPart(ENGLISH)]))
    est = estimate_chat_tokens(req)
    assert est >= estimate_tokens(ENGLISH) + 2 * tokens.MESSAGE_OVERHEAD + tokens.REPLY_PRIMING
    assert est <= estimate_tokens(ENGLISH) + estimate_tokens("You are a pirate.") + 15


def test_images_by_detail():
    def img(detail):
        return estimate_chat_tokens(_chat(Message("user", [MediaPart("image", url="https://x/a.png", detail=detail)])))

    base = estimate_chat_tokens(_chat(Message("user", [])))
    assert img("low") - base == 85
    assert img(None) - base == 765
    assert img("auto") - base == 765
    assert img("high") - base == 1105


def test_documents_by_pages_or_text():
    pdf = b"%PDF-1.7\n" + b"1 0 obj << /Type /Pages /Count 3 >>\n" + b"<< /Type /Page >>\n" * 3
    assert media_tokens(MediaPart("document", "application/pdf", data=pdf)) == 3 * tokens.PDF_PAGE_TOKENS
    opaque = b"%PDF-1.7\n" + b"\x00" * (2 * tokens.PDF_BYTES_PER_PAGE)
    assert media_tokens(MediaPart("document", "application/pdf", data=opaque)) == 3 * tokens.PDF_PAGE_TOKENS
    txt = MediaPart("document", "text/plain", data=ENGLISH.encode())
    assert media_tokens(txt) == estimate_tokens(ENGLISH)
    assert media_tokens(MediaPart("document", url="https://x/a.pdf")) == tokens.URL_DOCUMENT_TOKENS
    assert media_tokens(MediaPart("audio", "audio/wav", data=b"\x00" * 160_000)) == 320
    assert media_tokens(MediaPart("video", url="https://x/v.mp4")) == tokens.URL_VIDEO_TOKENS


def test_tools_tool_calls_and_schemas_count():
    plain = _chat(Message("user", [TextPart("Generate a magic number that is a multiple of 100")]))
    schema = {
        "type": "object",
        "properties": {"factor": {"type": "number", "description": "The number that will be a factor"}},
        "required": ["factor"],
    }
    tool = Tool("magic_number", "Generates a magic number that is a multiple of a given factor", schema)
    with_tools = _chat(*plain.messages, tools=[tool])
    assert estimate_chat_tokens(with_tools) > estimate_chat_tokens(plain) + 25
    round_trip = _chat(
        *plain.messages,
        Message("assistant", tool_calls=[ToolCall("call_1", "magic_number", '{"factor": 100}')]),
        Message("tool", [TextPart('{"magic_number": 2683700}')], tool_call_id="call_1"),
    )
    assert estimate_chat_tokens(round_trip) > estimate_chat_tokens(plain) + 15
    structured = _chat(*plain.messages, response_format=ResponseFormat("json_schema", schema=schema))
    assert estimate_chat_tokens(structured) > estimate_chat_tokens(plain) + 15


def test_embedding_estimate():
    req = EmbeddingRequest(model="cohere_english_v3", inputs=[ENGLISH, CODE])
    assert estimate_embedding_tokens(req) >= 101 + 187


# ---------------------------------------------------------------- billable characters (Vertex)


def test_billable_chars_skip_white_space():
    assert billable_chars("hello world") == 10  # Vertex's countTokens example
    assert billable_chars(" a\tb\nc\r ") == 3
    assert billable_chars("안녕하세요 세계") == 7


def test_count_chars_covers_all_text_of_a_request():
    req = _chat(
        Message("system", [TextPart("be brief")]),
        Message("user", [TextPart("hello world"), MediaPart("image", url="https://x/a.png")]),
        Message("assistant", tool_calls=[ToolCall("c1", "f", '{"a": 1}')]),
    )
    assert count_chars(req) == len("bebrief") + len("helloworld") + len("f") + len('{"a":1}')
