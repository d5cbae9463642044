

def hillis_steele_scan(a, b):
    """h_t = a_t * h_{t-1} + b_t along dim 1 (time) for every t at once, from h_{-1} = 0: after round r,
    position t holds the composition of the 2^r steps ending at t, so log2(time) vectorised rounds
    replace the loop over time."""
    step = 1
    while step < a.shape[1]:
        b = torch.cat([b[:, :step], b[:, step:] + a[:, step:] * b[:, :-step]], dim=1)
        a = torch.cat([a[:, :step], a[:, step:] * a[:, :-step]], dim=1)
        step *= 2
    return b


class LinearScan(torch.autograd.Function):
    """The scan with a backward of its own, so autograd keeps a and h instead of every round: the
    gradient is the same scan run backwards in time, g_t = dL/dh_t + a_{t+1} g_{t+1}, and then
    dL/db_t = g_t, dL/da_t = g_t h_{t-1}."""

    @staticmethod
    def forward(ctx, a, b):
        h = hillis_steele_scan(a, b)
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx, dh):
        a, h = ctx.saved_tensors
        a_next = torch.cat([a[:, 1:], torch.zeros_like(a[:, :1])], dim=1)
        g = hillis_steele_scan(a_next.flip(1), dh.flip(1)).flip(1)
        h_before = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)
        return g * h_before, g


def linear_scan(a, b):
    """h_t = a_t * h_{t-1} + b_t along dim 1 (time), from h_{-1} = 0, for every t at once.
    a, b: [batch, time, ...] of one shape, float32 (products of decays need the precision)."""
    return LinearScan.apply(a, b)
