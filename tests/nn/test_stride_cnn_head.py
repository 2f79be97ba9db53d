"""Stride_Conv5_FC3's head is Conv5_FC3's (networks.fc_head), not a copy of it: the names ClinicaDL's
state dict has (fc.2, fc.4, fc.6) come from one place."""

from __future__ import annotations

from neuroexec.nn import networks, stride_cnn


def test_the_head_is_built_by_networks_fc_head(monkeypatch):
    calls = []

    def recorded(*args):
        calls.append(args)
        return networks.fc_head(*args)

    monkeypatch.setattr(stride_cnn, "fc_head", recorded, raising=False)
    net = stride_cnn.build_stride_conv5_fc3((1, 33, 35, 31), 3, 0.25)
    assert calls == [(128 * 2 * 2 * 1, stride_cnn.HIDDEN, 3, 0.25)]
    assert [n for n, _ in net.fc.named_parameters()] == [
        f"{i}.{p}" for i in (2, 4, 6) for p in ("weight", "bias")
    ]
