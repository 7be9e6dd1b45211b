"""The shipped catalog: complete, sourced, internally consistent, with clear errors."""

import pytest

from heddle.models import catalog
from heddle.models.catalog_stub import model_spec
from heddle.models.errors import CatalogError, UnknownIdError
from heddle.models.ids import OfferKind, Tier
from heddle.models.yamlsource import load_yaml

APPLE_VARIANTS = {
    "m1": (7, 8), "m1-pro": (14, 16), "m1-max": (24, 32), "m1-ultra": (48, 64),
    "m2": (8, 10), "m2-pro": (16, 19), "m2-max": (30, 38), "m2-ultra": (60, 76),
    "m3": (8, 10), "m3-pro": (14, 18), "m3-max": (30, 40), "m3-ultra": (60, 80),
    "m4": (8, 10), "m4-pro": (16, 20), "m4-max": (32, 40),
}


@pytest.mark.parametrize("chip,cores", APPLE_VARIANTS.items())
def test_every_apple_chip_variant_is_a_device(chip, cores):
    for n in cores:
        spec = catalog.device(f"{chip}-{n}")
        assert spec.gpu_cores == n
        assert spec.vendor == "apple" and spec.backend == "metal"
        assert spec.family == chip.split("-")[0]


@pytest.mark.parametrize(
    "device_id", ["jetson-orin-nano-super", "jetson-agx-orin-64", "rtx-4090", "rtx-5090", "dgx-spark"]
)
def test_non_apple_devices_present(device_id):
    spec = catalog.device(device_id)
    assert spec.backend == "cuda"


def test_bandwidth_variants_follow_the_hardware_facts():
    assert catalog.device("m3-max-30").memory_bandwidth_gb_s == 300
    assert catalog.device("m3-max-40").memory_bandwidth_gb_s == 400
    assert catalog.device("m4-max-32").memory_bandwidth_gb_s == 410
    assert catalog.device("m4-max-40").memory_bandwidth_gb_s == 546
    assert catalog.device("m3-ultra-80").memory_bandwidth_gb_s == 819
    assert max(catalog.device("m3-ultra-80").memory_options_gb) == 512


def test_every_entry_is_sourced_and_physically_sane():
    for d in catalog.devices().values():
        assert d.source, d.id
        assert 0 <= d.idle_power_w <= d.typical_power_w <= d.max_power_w, d.id
        assert d.gpu_fp16_tflops >= d.gpu_fp32_tflops > 0, d.id
        assert d.price_usd > 0 and d.memory_options_gb, d.id
    for m in catalog.models().values():
        assert m.source and m.active_params_b <= m.params_b, m.id
    for o in catalog.offers().values():
        assert o.source, o.id


def test_more_gpu_cores_means_more_compute_within_a_chip():
    for chip, (small, big) in APPLE_VARIANTS.items():
        assert catalog.device(f"{chip}-{big}").gpu_fp32_tflops > catalog.device(f"{chip}-{small}").gpu_fp32_tflops


def test_model_catalog_covers_the_brief():
    for mid in ["llama-2-7b", "llama-3.1-8b", "llama-3.1-70b", "mistral-7b", "qwen2.5-7b",
                "qwen2.5-32b", "gpt-oss-20b", "gpt-oss-120b", "nomic-embed-text-v1.5"]:
        catalog.model(mid)
    llama = catalog.model("llama-3.1-8b")
    for q in ("f16", "q8_0", "q4_0", "q4_k_m"):
        assert q in llama.bytes_per_weight
    # block scales included: q8_0 is 8.5 bits, q4_0 4.5 bits
    assert llama.bytes_per_weight["q8_0"] == pytest.approx(8.5 / 8)
    assert llama.bytes_per_weight["q4_0"] == pytest.approx(4.5 / 8)
    assert 4.8 / 8 <= llama.bytes_per_weight["q4_k_m"] <= 4.9 / 8
    # Llama 3.1 8B: 32 layers x 8 KV heads x 128 dims x K,V x 2 bytes = 128 KiB per token
    assert llama.kv_bytes_per_token == 131072
    moe = catalog.model("gpt-oss-120b")
    assert moe.active_params_b < moe.params_b / 10 and "mxfp4" in moe.bytes_per_weight
    assert catalog.model("nomic-embed-text-v1.5").kind == "embedding"


def test_offers_have_tiers_prices_and_gpu_specs():
    sonnet, opus, haiku = (catalog.offer(i) for i in ("claude-sonnet-4.6", "claude-opus-4.6", "claude-haiku-4.5"))
    assert sonnet.tier == Tier.STANDARD and opus.tier == Tier.FRONTIER and haiku.tier == Tier.STANDARD
    assert haiku.price_usd_per_m_output_tokens < sonnet.price_usd_per_m_output_tokens < opus.price_usd_per_m_output_tokens
    for oid in ["aws-g5.xlarge", "aws-g6.xlarge", "aws-p4d.24xlarge", "aws-p5.48xlarge",
                "aws-inf2.xlarge", "aws-trn1.2xlarge"]:
        o = catalog.offer(oid)
        assert o.kind == OfferKind.INSTANCE and o.price_usd_per_hour > 0 and o.startup_s > 0
        assert o.gpu_count >= 1 and o.gpu_bandwidth_gb_s > 0 and o.gpu_fp16_tflops > 0


def test_unknown_id_suggests_close_matches():
    with pytest.raises(UnknownIdError, match="m2-ultra-76"):
        catalog.device("m2-ultra-67")
    with pytest.raises(KeyError):  # callers catching KeyError keep working
        catalog.model("llama-9")


def test_stub_name_now_returns_the_real_model():
    assert model_spec("qwen2.5-32b").params_b == catalog.model("qwen2.5-32b").params_b


def test_lookup_finds_any_kind():
    assert catalog.lookup("dgx-spark").id == "dgx-spark"
    assert catalog.lookup("mistral-7b").id == "mistral-7b"
    assert catalog.lookup("aws-p5.48xlarge").id == "aws-p5.48xlarge"


def _devices_doc(text):
    return load_yaml(text, "devices.yaml", CatalogError)


GOOD_DEVICE = """devices:
  - id: box
    name: Box
    vendor: nvidia
    family: rtx
    backend: cuda
    gpu_cores: 10
    cpu_cores: [4, 0]
    memory_bandwidth_gb_s: 100
    memory_options_gb: [8]
    gpu_fp32_tflops: 1
    gpu_fp16_tflops: 2
    npu_tops: 0
    power_w: [1, 2, 3]
    price_usd: 10
    machine: a box
    source: test
"""


def test_bad_catalog_entry_names_file_line_and_field():
    text = GOOD_DEVICE.replace("    npu_tops: 0\n", "    npu_tops: 0\n    npu_topz: 3\n")
    line = text.splitlines().index("    npu_topz: 3") + 1
    doc = _devices_doc(text)
    with pytest.raises(CatalogError, match=rf"devices\.yaml:{line}: devices\[0\]\.npu_topz: unknown field"):
        catalog.load_catalog(devices_doc=doc)
    doc = _devices_doc(GOOD_DEVICE.replace("power_w: [1, 2, 3]", "power_w: [5, 2, 3]"))
    with pytest.raises(CatalogError, match=r"devices\.yaml:2: devices\[0\].*rising order"):
        catalog.load_catalog(devices_doc=doc)


def test_duplicate_catalog_ids_are_rejected():
    doc = _devices_doc(GOOD_DEVICE + GOOD_DEVICE.replace("devices:\n", ""))
    with pytest.raises(CatalogError, match="'box' is defined twice"):
        catalog.load_catalog(devices_doc=doc)


def test_big_open_models_qualify_for_the_standard_tier():
    assert {m.id for m in catalog.models().values() if m.tier == Tier.STANDARD} == {
        "llama-3.1-70b", "qwen2.5-32b", "gpt-oss-120b"}
    assert catalog.model("llama-3.1-8b").tier == Tier.LOCAL
