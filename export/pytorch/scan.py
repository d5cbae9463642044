

def linear_scan(a, b, h0=None):
    """h_t = a_t * h_{t-1} + b_t along dim 1 (time) for every t at once, from h_{-1} = h0 (or zeros).
    Hillis-Steele: after round r, position t holds the composition of the 2^r steps ending at t
    (h_t = a h_{t-2^r} + b), so log2(time) vectorised rounds replace the loop over time.
    a, b: [batch, time, ...], float32 (products of decays need the precision)."""
    if h0 is not None:
        b = torch.cat([b[:, :1] + a[:, :1] * h0.unsqueeze(1), b[:, 1:]], dim=1)
    step = 1
    while step < a.shape[1]:
        b = torch.cat([b[:, :step], b[:, step:] + a[:, step:] * b[:, :-step]], dim=1)
        a = torch.cat([a[:, :step], a[:, step:] * a[:, :-step]], dim=1)
        step *= 2
    return b
