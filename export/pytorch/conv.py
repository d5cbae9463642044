

def causal_conv(x, weight, bias=None, state=None):
    """Depthwise causal convolution over time, y[t, c] = bias[c] + sum_j weight[c, j] x[t - (k-1) + j, c].
    x: [batch, time, channels]; weight: [channels, k]; state: the k-1 inputs before x
    ([batch, k-1, channels]; zeros when None). Returns y and the last k-1 inputs (the next state)."""
    k = weight.shape[1]
    if state is None:
        state = x.new_zeros(x.shape[0], k - 1, x.shape[2])
    padded = torch.cat([state.type_as(x), x], dim=1)
    y = F.conv1d(padded.transpose(1, 2), weight.unsqueeze(1), bias, groups=x.shape[2]).transpose(1, 2)
    return y, padded[:, padded.shape[1] - (k - 1):]
