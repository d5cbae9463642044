

# ------------------------------------------------------------ shared pieces

NORM_EPS = 1e-5  # every RMSNorm: the slots', the final one, qk-norm, per-head output norms
LAMBDA_INIT = 0.8  # differential forms: y = y_1 - (LAMBDA_INIT + lambda) * y_2
INIT_STD = 0.02  # projections and the embedding start at N(0, INIT_STD)


def rms_norm(x, gain=None):
    """x / sqrt(mean(x^2) + eps) over the last dimension, times gain; float32 inside under autocast."""
    x32 = x.float()
    y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + NORM_EPS)
    if gain is not None:
        y = y * gain.float()
    return y.type_as(x)


def differential_heads(a_1, a_2, lam, scale):
    """Differential Transformer: a_1 - (0.8 + lambda_h) a_2, RMS-normalised per head (last dim), times scale.
    lam is the per-head parameter, already shaped to broadcast against a_1."""
    return rms_norm(a_1 - (LAMBDA_INIT + lam) * a_2) * scale


def differential_halves(y, diff_lambda):
    """rec, ssm, gconv: the doubled inner channels' first half minus (0.8 + diff_lambda) times the second."""
    half = y.shape[-1] // 2
    return y[..., :half] - (LAMBDA_INIT + diff_lambda) * y[..., half:]


# Initial values, as livsearch draws them (the distributions, not the numbers).
def normal(*shape, std=INIT_STD):
    return nn.Parameter(torch.randn(*shape) * std)


def out_projection(*shape, n_slots):
    """Projections back into the residual stream: N(0, 0.02 / sqrt(2 * slots)), as GPT-2."""
    return normal(*shape, std=INIT_STD / math.sqrt(2 * n_slots))


def ones(*shape):
    return nn.Parameter(torch.ones(*shape))


def zeros(*shape):
    return nn.Parameter(torch.zeros(*shape))


def fan_in_uniform(*shape):
    """U(-1/sqrt(f), 1/sqrt(f)), f the last dimension (PyTorch's Conv1d taps; Mamba's dt_proj)."""
    bound = 1.0 / math.sqrt(shape[-1])
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


def add_lambda(module, size):
    """A weight named "lambda" (the differential forms' per-head lambda, stored as lambda - 0.8 and
    starting at 0; rec's RG-LRU Lambda). "lambda" is a Python keyword, so it is registered by name and
    read through lambda_of(module); the name is the checkpoint's."""
    module.register_parameter("lambda", zeros(size))


def lambda_of(module):
    return getattr(module, "lambda")


def short_convolution(module, t, name, convs):
    """sa's and linattn's short convolution `name` (module.<name>, taps [channels, k]) on a projection's
    output, the identity when module.short_conv is 0; records its history in `convs` (decode) when that
    is a dict. causal_conv comes from conv.py, which the export includes whenever a short convolution
    is on."""
    if not module.short_conv:
        return t
    t, history = causal_conv(t, getattr(module, name), None, None if convs is None else convs.get(name))
    if convs is not None:
        convs[name] = history
    return t
