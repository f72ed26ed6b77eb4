"""The built-in catalog: 004's tables exactly, 000's and 003's models, lookups, overrides and cost."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lmgate.catalog.catalog import (
    Catalog,
    ModelInfo,
    Price,
    _builtin_models,
    audio_cost_usd,
    cost_usd,
    image_cost_usd,
    normalise,
    reservation_usd,
)
from lmgate.errors import ConfigError
from lmgate.types import Usage

M, K, C = "1M tokens", "1K tokens", "1K characters"
T, TI, TIDV = {"text"}, {"text", "image"}, {"text", "image", "document", "video"}

# 004's three tables, transcribed by hand: name, unit, input, output, context window, modalities.
TABLE_004 = [
    ("gpt-35-turbo", M, 1, 2, 16385, T),
    ("gpt-35-turbo-1106", M, 1, 2, 16385, T),
    ("gpt-4", M, 10, 30, 128000, T),
    ("gpt-4-0125-preview", M, 10, 30, 128000, T),
    ("gpt-4o", M, 2.75, 11, 128000, TI),
    ("gpt4-vision-preview", M, 10, 30, 128000, TI),
    ("gpt-4-vision-preview", M, 10, 30, 128000, TI),
    ("gpt-4o-mini", M, 0.165, 0.66, 128000, TI),
    ("o1-preview", M, 16.50, 66, 128000, TI),
    ("o1-mini", M, 3.30, 13.20, 128000, TI),
    ("gemini-1.5-flash", C, 0.00001875, 0.000075, 1048576, TI),
    ("gemini-1.5-pro", C, 0.0003125, 0.00125, 2097152, TI),
    ("gemini-1.0-pro", C, 0.000125, 0.000375, 32760, TI),
    ("anthropic.claude-3-haiku-20240307-v1:0", K, 0.00025, 0.00125, 200000, TI),
    ("anthropic.claude-3-sonnet-20240229-v1:0", K, 0.003, 0.015, 200000, TI),
    ("anthropic.claude-3-5-sonnet-20240620-v1:0", K, 0.003, 0.015, 200000, TI),
    ("anthropic.claude-3-opus-20240229-v1:0", K, 0.015, 0.075, 200000, TI),
    ("meta.llama3-8b-instruct-v1:0", K, 0.0003, 0.0003, 128000, T),
    ("meta.llama3-70b-instruct-v1:0", K, 0.00265, 0.0035, 128000, T),
    ("meta.llama3-1-405b-instruct-v1:0", K, 0.0024, 0.0024, 128000, T),
    ("meta.llama3-1-70b-instruct-v1:0", K, 0.00072, 0.00072, 128000, T),
    ("meta.llama3-1-8b-instruct-v1:0", K, 0.00022, 0.00022, 128000, T),
    ("us.meta.llama3-2-90b-instruct-v1:0", K, 0.00072, 0.00072, 128000, TI),
    ("us.meta.llama3-2-11b-instruct-v1:0", K, 0.00016, 0.00016, 128000, TI),
    ("us.amazon.nova-micro-v1:0", K, 0.000035, 0.00014, 128000, T),
    ("us.amazon.nova-lite-v1:0", K, 0.00006, 0.00024, 300000, TIDV),
    ("us.amazon.nova-pro-v1:0", K, 0.0008, 0.0032, 300000, TIDV),
]
MODELS_000 = [
    "inference-apertus-8b", "inference-apertus-70b", "inference-bge-m3", "inference-deepseekr1-70b",
    "inference-deepseekr1-670b", "inference-llama33-70b", "inference-llama4-maverick",
    "inference-llama4-scout-17b", "inference-gemma-12b-it",
]  # fmt: skip
REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog.builtin()


# ---------------------------------------------------------------- 004, 000, 003


@pytest.mark.parametrize("name,unit,inp,out,ctx,mods", TABLE_004, ids=[r[0] for r in TABLE_004])
def test_every_004_row_exactly(cat, name, unit, inp, out, ctx, mods):
    m = cat.get(name)
    assert m is not None and m.name == name
    assert (m.price.unit, m.price.input, m.price.output) == (unit, inp, out)
    assert m.context_window == ctx
    assert m.modalities == frozenset(mods)
    assert m.status == "active" and not m.deprecated
    assert m.kind == "chat"
    assert m.family == {M: "azure/openai", C: "gemini/vertex", K: "bedrock"}[unit]


def test_004_rows_match_the_reference_text(cat):
    """Parse 004 itself (when shared/ is beside the checkout) and compare every row."""
    path = REFERENCE / "004_2436ccbd99c50020.txt"
    if not path.exists():
        pytest.skip("shared/reference is not beside this checkout")
    units = {"M Tokens": M, "k Character": C, "k Tokens": K}
    unit, rows = None, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        header = re.search(r"\| Price \(([^)]+)\) \|", line)
        if header:
            unit = units[header.group(1)]
            continue
        cells = [c.strip() for c in line.split("|")]
        price = re.fullmatch(r"Input: \$([\d.]+), Output: \$([\d.]+)", cells[2]) if len(cells) >= 5 else None
        if not price:
            continue
        m = cat.get(cells[0])
        assert m is not None and m.name == cells[0], cells[0]
        assert (m.price.unit, m.price.input, m.price.output) == (unit, float(price.group(1)), float(price.group(2)))
        assert m.status == cells[3].lower()
        mods = {"document" if x.strip().lower() == "docs" else x.strip().lower() for x in cells[4].split(",")}
        assert m.modalities == frozenset(mods), cells[0]
        rows += 1
    assert rows == len(TABLE_004) == 27


def test_embedding_image_and_audio_models_of_004(cat):
    ada = cat.get("text-embedding-ada-002")
    assert ada.kind == "embedding" and ada.embedding_dims == 1536 and ada.price == Price(0.10, 0, M)
    dalle = cat.get("dall-e-3")
    assert dalle.kind == "image" and dalle.price.unit == "image" and dalle.max_batch == 1
    whisper = cat.get("whisper")
    assert whisper.kind == "audio" and whisper.price.unit == "minute" and whisper.price.input == 0.006
    assert cat.get("whisper-1") is whisper


def test_models_of_000(cat):
    path = REFERENCE / "000_e6eb9bfb29817a57.txt"
    listed = set(MODELS_000)
    if path.exists():
        listed |= set(re.findall(r'"(?:id|model)": "(inference-[a-z0-9.-]+)"', path.read_text(encoding="utf-8")))
    for name in listed:
        m = cat.get(name)
        assert m is not None and m.family == "openai-compatible" and m.protocol == "openai", name
        assert m.price.input == m.price.output == 0  # 000 publishes no prices
        assert m.context_window >= (8192 if m.kind == "embedding" else 32768)
    bge = cat.get("inference-bge-m3")
    assert bge.kind == "embedding" and bge.embedding_dims == 1024
    assert cat.get("hosted_vllm/infer-gemma-3-12b-it").name == "inference-gemma-12b-it"  # 000's answers name it so


def test_models_of_003(cat):
    llama = cat.get("llama_4_maverick")
    assert llama.modalities == frozenset(TI) and llama.kind == "chat"
    flash = cat.get("gemini-2.5-flash")
    assert flash.modalities == frozenset({"text", "image", "document", "audio", "video"})
    assert (flash.price.input, flash.price.output, flash.price.unit) == (0.30, 2.50, M)
    assert flash.context_window == 1048576 and flash.max_output_tokens == 65536
    cohere = cat.get("cohere_english_v3")
    assert cohere.kind == "embedding" and cohere.embedding_dims == 1024 and cohere.max_batch == 96
    assert cohere.protocol == "cohere" and cohere.price == Price(0.10, 0, M)
    assert cat.get("embed-english-v3.0") is cohere


def test_anthropic_names_cost_as_the_bedrock_rows(cat):
    for api, bedrock in [
        ("claude-3-haiku-20240307", "anthropic.claude-3-haiku-20240307-v1:0"),
        ("claude-3-sonnet-20240229", "anthropic.claude-3-sonnet-20240229-v1:0"),
        ("claude-3-5-sonnet-20240620", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
        ("claude-3-opus-20240229", "anthropic.claude-3-opus-20240229-v1:0"),
    ]:
        a, b = cat.get(api), cat.get(bedrock)
        assert a.price.unit == M and a.family == "anthropic" and a.protocol == "anthropic"
        usage = Usage(input_tokens=12345, output_tokens=678)
        assert cost_usd(a, usage) == pytest.approx(cost_usd(b, usage), rel=1e-9)


def test_every_entry_is_well_formed(cat):
    assert len(cat) >= 50
    seen: dict[str, str] = {}
    for m in cat:
        assert m.context_window > 0 and m.modalities and m.price.unit
        assert m.status in ("active", "deprecated") and m.kind in ("chat", "embedding", "image", "audio")
        if m.kind == "embedding":
            assert m.embedding_dims
        for key in (m.name, *m.aliases):
            other = seen.setdefault(normalise(key), m.name)
            assert other == m.name, f"{key} of {m.name} collides with {other}"


def test_builtin_file_is_parsed_once():
    assert Catalog.builtin().get("gpt-4o") is Catalog.builtin().get("gpt-4o")
    hits = _builtin_models.cache_info().hits
    Catalog.builtin()
    assert _builtin_models.cache_info().hits == hits + 1


# ---------------------------------------------------------------- lookup


def test_lookup_by_alias_and_normalised_name(cat):
    assert cat.get("gpt-3.5-turbo").name == "gpt-35-turbo"
    assert cat.get("azure/gpt-4o").name == "gpt-4o"
    assert cat.get("GPT-4o").name == "gpt-4o"
    assert cat.get("bedrock/us.anthropic.claude-3-haiku-20240307-v1:0").name == "anthropic.claude-3-haiku-20240307-v1:0"
    assert cat.get("eu.anthropic.claude-3-haiku-20240307-v1:0").name == "anthropic.claude-3-haiku-20240307-v1:0"
    assert cat.get("meta.llama3-2-90b-instruct-v1:0").name == "us.meta.llama3-2-90b-instruct-v1:0"
    assert cat.get("models/gemini-2.5-flash").name == "gemini-2.5-flash"
    assert cat.get("projects/p/locations/us-central1/publishers/google/models/gemini-1.5-pro-002").name == "gemini-1.5-pro"
    assert cat.get("gpt-4o-2024-08-06").name == "gpt-4o"  # the name Azure answers with
    assert cat.get("no-such-model") is None
    assert cat.get("") is None
    assert "gpt-4o" in cat and "nope" not in cat
    assert "gpt-4o" in cat.names() and "gpt-3.5-turbo" not in cat.names()


def test_exact_name_wins_over_normalised():
    a, b = ModelInfo("us.x-model"), ModelInfo("x-model", context_window=1000)
    cat = Catalog([a, b])
    assert cat.get("us.x-model") is a and cat.get("x-model") is b
    assert cat.get("eu.x-model") in (a, b)


def test_deprecated_flag(cat):
    opus = cat.get("claude-3-opus-20240229")
    assert opus.status == "deprecated" and opus.deprecated
    assert not cat.get("claude-3-haiku-20240307").deprecated


# ---------------------------------------------------------------- overrides from config


def test_override_price_of_a_builtin_model(cat):
    new = cat.with_overrides({"gpt-4o": {"pricing": {"input": 2.5, "output": 10, "unit": "1M tokens"}}})
    assert new.get("gpt-4o").price == Price(2.5, 10, M)
    assert cat.get("gpt-4o").price.input == 2.75  # the original is untouched
    assert new.get("gpt-4o").context_window == 128000  # other fields kept


def test_partial_price_override_keeps_the_rest(cat):
    new = cat.with_overrides({"claude-3-haiku-20240307": {"pricing": {"output": 2}}})
    p = new.get("claude-3-haiku-20240307").price
    assert (p.input, p.output, p.cached_input, p.cache_write, p.unit) == (0.25, 2, 0.03, 0.30, M)


def test_a_new_unit_starts_from_a_clean_price(cat):
    new = cat.with_overrides({"claude-3-haiku-20240307": {"pricing": {"input": 0.3, "output": 1.5, "unit": "1K characters"}}})
    p = new.get("claude-3-haiku-20240307").price
    assert (p.unit, p.cached_input, p.cache_write) == (C, None, None)


def test_add_a_model_and_other_fields(cat):
    new = cat.with_overrides(
        {
            "my-llm": {
                "pricing": {"input": 0.5, "output": 1.5, "unit": "1M tokens"},
                "context_window": 64000,
                "modalities": ["text", "image", "Docs"],
                "status": "deprecated",
                "aliases": ["my-llm-latest"],
                "deployments": [{"provider": "kvant", "model": "x"}],  # routing keys are ignored
                "fallbacks": ["gpt-4o"],
                "max_output_tokens": None,  # None means "not set"
            }
        }
    )
    m = new.get("my-llm-latest")
    assert m.name == "my-llm" and m.context_window == 64000 and m.deprecated
    assert m.modalities == frozenset({"text", "image", "document"})
    assert cost_usd(m, Usage(input_tokens=1_000_000, output_tokens=1_000_000)) == 2.0
    assert new.get("my-llm").family == "openai-compatible"
    assert "my-llm" not in cat


def test_a_new_name_inherits_from_its_base(cat):
    new = cat.with_overrides({"fast": {"base": "gpt-4o-mini", "context_window": 32000}})
    fast = new.get("fast")
    assert fast.price == cat.get("gpt-4o-mini").price and fast.context_window == 32000
    assert fast.aliases == ()  # gpt-4o-mini's aliases stay with it
    assert new.get("gpt-4o-mini").context_window == 128000
    # a name that only matches after normalising inherits too
    assert cat.with_overrides({"azure/gpt-4o": {}}).get("azure/gpt-4o").price.input == 2.75


def test_an_unknown_model_without_a_price_is_free_and_conservative(cat):
    m = cat.with_overrides({"somebody-elses-model": {}}).get("somebody-elses-model")
    assert m.price == Price() and m.context_window == 32768


def test_config_objects_are_accepted(cat):
    from lmgate.config import ModelConfig

    mc = ModelConfig(
        name="gpt-4o",
        deployments=[{"provider": "azure-eu", "model": "gpt-4o"}],
        pricing={"input": 2.75, "output": 11, "unit": "1M tokens"},
        context_window=100000,
        modalities=["text"],
    )
    m = cat.with_overrides({mc.name: mc.model_dump()}).get("gpt-4o")
    assert m.context_window == 100000 and m.modalities == frozenset({"text"}) and m.price.output == 11
    assert cat.with_overrides({mc.name: mc}).get("gpt-4o").context_window == 100000


@pytest.mark.parametrize(
    "fields",
    [
        {"pricing": {"input": -1}},
        {"pricing": {"input": "cheap"}},
        {"pricing": {"unit": "1 token"}},
        {"pricing": {"inptu": 1}},
        {"context_window": 0},
        {"context_window": "128K"},
        {"modalities": ["smell"]},
        {"status": "retired"},
        {"kind": "rerank"},
        {"contex_window": 5},
        {"base": "no-such-model"},
        {"aliases": "one"},
    ],
)
def test_bad_overrides_are_refused_with_the_place(cat, fields):
    with pytest.raises(ConfigError, match=r"models\[m\]"):
        cat.with_overrides({"m": fields})


# ---------------------------------------------------------------- cost


def test_cost_per_million_tokens(cat):
    assert cost_usd(cat.get("gpt-4o"), Usage(input_tokens=1000, output_tokens=500)) == pytest.approx(0.00825)
    assert cost_usd(cat.get("text-embedding-ada-002"), Usage(input_tokens=1_000_000)) == pytest.approx(0.10)


def test_cost_per_thousand_tokens(cat):
    haiku = cat.get("anthropic.claude-3-haiku-20240307-v1:0")
    assert cost_usd(haiku, Usage(input_tokens=2000, output_tokens=1000)) == pytest.approx(0.00175)
    nova = cat.get("us.amazon.nova-micro-v1:0")
    assert cost_usd(nova, Usage(input_tokens=1000, output_tokens=1000)) == pytest.approx(0.000175)


def test_cost_per_thousand_characters_gemini_1x(cat):
    flash = cat.get("gemini-1.5-flash")
    usage = Usage(input_tokens=2600, output_tokens=500, input_chars=10000, output_chars=2000)
    assert cost_usd(flash, usage) == pytest.approx(10 * 0.00001875 + 2 * 0.000075)
    pro = cat.get("gemini-1.0-pro")  # characters unknown: tokens * 4
    assert cost_usd(pro, Usage(input_tokens=1000, output_tokens=100)) == pytest.approx(4 * 0.000125 + 0.4 * 0.000375)


def test_cached_and_cache_write_tokens(cat):
    haiku = cat.get("claude-3-haiku-20240307")  # input 0.25, cache hit 0.03, cache write 0.30, output 1.25
    usage = Usage(input_tokens=10000, cached_tokens=6000, cache_write_tokens=2000, output_tokens=100)
    assert cost_usd(haiku, usage) == pytest.approx((2000 * 0.25 + 6000 * 0.03 + 2000 * 0.30 + 100 * 1.25) / 1e6)
    gpt = cat.get("gpt-4o")  # no cached price: cached tokens cost as input
    assert cost_usd(gpt, Usage(input_tokens=1000, cached_tokens=800)) == cost_usd(gpt, Usage(input_tokens=1000))
    flash = cat.get("gemini-2.5-flash")
    assert cost_usd(flash, Usage(input_tokens=1_000_000, cached_tokens=1_000_000)) == pytest.approx(0.03)


def test_cost_is_rounded_to_ten_places(cat):
    c = cost_usd(cat.get("gpt-4o-mini"), Usage(input_tokens=7, output_tokens=3))
    assert c == round(7 * 0.165e-6 + 3 * 0.66e-6, 10) and c == round(c, 10)
    assert cost_usd(cat.get("inference-gemma-12b-it"), Usage(input_tokens=11, output_tokens=28)) == 0.0


def test_image_cost(cat):
    dalle = cat.get("dall-e-3")
    assert image_cost_usd(dalle) == 0.04  # standard 1024x1024
    assert image_cost_usd(dalle, 1, "1792x1024", "hd") == 0.12
    assert image_cost_usd(dalle, 2, "1024x1792", "standard") == 0.16
    assert image_cost_usd(dalle, 1, "512x512", "standard") == 0.08  # unlisted size: dearest of its quality
    assert image_cost_usd(dalle, 1, "1024x1024", "ultra") == 0.12  # unlisted quality: dearest of all
    assert image_cost_usd(cat.get("gpt-4o"), 1) == 0.0
    assert cost_usd(dalle, Usage(input_tokens=100)) == 0.0


def test_audio_cost(cat):
    whisper = cat.get("whisper")
    assert audio_cost_usd(whisper, 90) == pytest.approx(0.009)
    assert audio_cost_usd(whisper, 0) == 0.0
    assert audio_cost_usd(cat.get("gpt-4o"), 60) == 0.0


# ---------------------------------------------------------------- reservation


def test_reservation_is_the_worst_case(cat):
    gpt = cat.get("gpt-4o")
    assert reservation_usd(gpt, 1000, 500) == cost_usd(gpt, Usage(input_tokens=1000, output_tokens=500))
    # no max_tokens in the request: the model's own output limit
    assert reservation_usd(gpt, 1000, None) == cost_usd(gpt, Usage(input_tokens=1000, output_tokens=16384))
    # a request asking for more than the model can write is capped at the model's limit
    assert reservation_usd(gpt, 1000, 10**6) == reservation_usd(gpt, 1000, None)
    # no known output limit: the rest of the window
    m = Catalog([ModelInfo("m", context_window=10000, price=Price(1, 2))]).get("m")
    assert reservation_usd(m, 4000, None) == pytest.approx((4000 * 1 + 6000 * 2) / 1e6)
    # never below the real cost of the same call with cache hits
    haiku = cat.get("claude-3-haiku-20240307")
    assert reservation_usd(haiku, 5000, 100) >= cost_usd(haiku, Usage(input_tokens=5000, cached_tokens=4000, output_tokens=100))


def test_reservation_other_units(cat):
    assert reservation_usd(cat.get("gemini-1.5-pro"), 1000, 100) == pytest.approx(4 * 0.0003125 + 0.4 * 0.00125)
    assert reservation_usd(cat.get("text-embedding-ada-002"), 1000) == pytest.approx(0.0001)
    assert reservation_usd(cat.get("dall-e-3"), 0) == 0.12
    assert reservation_usd(cat.get("whisper"), 0) == 0.0
