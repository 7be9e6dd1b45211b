"""Performance model behaviour a user of the twin or the optimizer would notice."""

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heddle.models import catalog, perf
from heddle.models.errors import PerfError
from heddle.models.perf import llm_rates, llm_step, load_seconds, offer_device

LLAMA8 = catalog.model("llama-3.1-8b")


def dev(i):
    return catalog.device(i)


def test_decode_follows_bandwidth_and_prefill_follows_compute():
    base = dev("m2-ultra-76")
    half_bw = dataclasses.replace(base, id="half-bw", memory_bandwidth_gb_s=base.memory_bandwidth_gb_s / 2)
    half_c = dataclasses.replace(base, id="half-c", gpu_fp16_tflops=base.gpu_fp16_tflops / 2)
    p0, d0 = llm_rates(base, LLAMA8, "q4_0")
    p1, d1 = llm_rates(half_bw, LLAMA8, "q4_0")
    p2, d2 = llm_rates(half_c, LLAMA8, "q4_0")
    assert d1 < 0.8 * d0 and p1 == pytest.approx(p0)  # decode: bandwidth-bound
    assert p2 == pytest.approx(p0 / 2, rel=0.05) and d2 > 0.9 * d0  # prefill: compute-bound


def test_smaller_quantization_decodes_faster():
    d = dev("m3-max-40")
    rates = [llm_rates(d, LLAMA8, q)[1] for q in ("f16", "q8_0", "q4_k_m")]
    assert rates[0] < rates[1] < rates[2]


def test_prefill_has_a_bandwidth_floor():
    # a device with absurd compute cannot prefill faster than reading the weights per ubatch
    d = dataclasses.replace(dev("m4-10"), id="compute-monster", gpu_fp16_tflops=1e6)
    prefill, _ = llm_rates(d, LLAMA8, "q8_0")
    ceiling = perf.PREFILL_UBATCH_TOKENS * d.memory_bandwidth_gb_s / LLAMA8.weights_gb("q8_0")
    assert prefill == pytest.approx(ceiling, rel=1e-6)


def test_batching_raises_aggregate_throughput_until_compute_bound():
    d = dev("rtx-4090")
    per_request = [llm_rates(d, LLAMA8, "q4_k_m", batch=b)[1] for b in (1, 2, 4, 8, 16, 64, 256)]
    aggregate = [b * r for b, r in zip((1, 2, 4, 8, 16, 64, 256), per_request)]
    assert all(a < b for a, b in zip(per_request[1:], per_request))  # each request slower
    assert all(a < b for a, b in itertools.pairwise(aggregate))  # the device does more
    # saturation: at large batches throughput approaches the compute roofline
    assert aggregate[-1] / aggregate[-2] < 2.0  # quadrupling the batch no longer ~quadruples it
    assert aggregate[2] / aggregate[0] > 3.0  # while small batches scale almost linearly


def test_longer_context_slows_decode_through_the_kv_cache():
    d = dev("m2-max-38")
    short = llm_rates(d, LLAMA8, "q4_0", context_tokens=128)[1]
    long = llm_rates(d, LLAMA8, "q4_0", context_tokens=32768)[1]
    assert long < 0.85 * short


def test_moe_decodes_like_its_active_parameters():
    d = dev("m3-ultra-80")
    moe = llm_rates(d, catalog.model("gpt-oss-120b"), "mxfp4")[1]
    dense70 = llm_rates(d, catalog.model("llama-3.1-70b"), "q4_k_m")[1]
    assert moe > 2 * dense70


def test_step_adds_load_time_when_not_resident():
    d = dev("m4-pro-20")
    warm = llm_step(d, LLAMA8, "q4_k_m", 1000, 200)
    cold = llm_step(d, LLAMA8, "q4_k_m", 1000, 200, resident=False)
    assert warm.load_s == 0 and cold.load_s == pytest.approx(load_seconds(d, LLAMA8, "q4_k_m"))
    assert cold.seconds == pytest.approx(warm.seconds + cold.load_s)
    assert warm.seconds == pytest.approx(warm.prefill_s + warm.decode_s)
    assert warm.prefill_s == pytest.approx(1000 / warm.prefill_tokens_per_s)
    # loading ~4.9 GB from a ~5 GB/s SSD takes seconds, not minutes
    assert 1.0 < cold.load_s < 10.0


def test_unseen_devices_are_predicted_in_a_sensible_order():
    decode = {i: llm_rates(dev(i), LLAMA8, "q4_k_m")[1] for i in
              ("m4-10", "m4-pro-20", "m4-max-40", "m3-ultra-80", "jetson-orin-nano-super",
               "jetson-agx-orin-64", "rtx-4090", "rtx-5090", "dgx-spark")}
    assert decode["m4-10"] < decode["m4-pro-20"] < decode["m4-max-40"] < decode["m3-ultra-80"]
    assert decode["jetson-orin-nano-super"] < decode["jetson-agx-orin-64"] < decode["dgx-spark"]
    assert decode["dgx-spark"] < decode["rtx-4090"] < decode["rtx-5090"]


def test_rates_are_cached_for_hot_loops():
    d = dev("m1-max-32")
    first = llm_rates(d, LLAMA8, "q8_0", batch=3, context_tokens=700)
    hits = perf._rates.cache_info().hits
    again = llm_rates(d, LLAMA8, "q8_0", batch=3, context_tokens=650)  # same context bucket
    assert again is first and perf._rates.cache_info().hits == hits + 1


def test_unknown_quant_or_bad_batch_is_a_clear_error():
    with pytest.raises(PerfError, match="no quantization 'q4_0'.*mxfp4"):
        llm_rates(dev("m2-ultra-76"), catalog.model("gpt-oss-20b"), "q4_0")
    with pytest.raises(PerfError, match="batch"):
        llm_rates(dev("m2-ultra-76"), LLAMA8, "q4_0", batch=0)


def test_cloud_instances_are_predicted_from_their_gpus():
    g5 = offer_device(catalog.offer("aws-g5.xlarge"))
    p5 = offer_device(catalog.offer("aws-p5.48xlarge"))
    assert max(p5.memory_options_gb) == 640 and max(g5.memory_options_gb) == 24
    assert llm_rates(p5, LLAMA8, "q4_k_m")[1] > llm_rates(g5, LLAMA8, "q4_k_m")[1]
    assert llm_rates(offer_device(catalog.offer("aws-inf2.xlarge")), LLAMA8, "f16")[1] > 0
    with pytest.raises(PerfError, match="API tier"):
        offer_device(catalog.offer("claude-opus-4.6"))


def test_api_step_time_is_latency_plus_streaming():
    opus = catalog.offer("claude-opus-4.6")
    step = perf.api_step(opus, 2000, 500)
    assert step.seconds == pytest.approx(opus.network_latency_s + 2000 / opus.prefill_tokens_per_s + 500 / opus.decode_tokens_per_s)
    with pytest.raises(PerfError):
        perf.api_step(catalog.offer("aws-g6.xlarge"), 1, 1)


def test_processor_seconds_scale_with_core_speed():
    assert perf.processor_seconds(dev("m1-8"), 10.0) == pytest.approx(10.0)
    assert perf.processor_seconds(dev("m4-10"), 10.0) < 10.0 < perf.processor_seconds(dev("jetson-orin-nano-super"), 10.0)

_DEVICES = sorted(catalog.devices())
_MODELS = sorted(catalog.models())


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(_DEVICES), st.sampled_from(_MODELS), st.data(),
    st.integers(0, 20000), st.integers(0, 4000), st.integers(1, 64),
)
def test_step_time_is_positive_and_monotone(device_id, model_id, data, prompt, output, batch):
    d, m = catalog.device(device_id), catalog.model(model_id)
    quant = data.draw(st.sampled_from(sorted(m.bytes_per_weight)))
    step = llm_step(d, m, quant, prompt, output, batch=batch)
    assert step.seconds >= 0 and step.prefill_tokens_per_s > 0 and step.decode_tokens_per_s > 0
    assert llm_step(d, m, quant, prompt + 256, output, batch=batch).seconds >= step.seconds
    assert llm_step(d, m, quant, prompt, output + 64, batch=batch).seconds > step.seconds
    # a bigger batch: each request no faster, the device as a whole no slower
    _, one = llm_rates(d, m, quant, batch=batch, context_tokens=prompt)
    _, more = llm_rates(d, m, quant, batch=batch + 1, context_tokens=prompt)
    assert more <= one and (batch + 1) * more >= batch * one
