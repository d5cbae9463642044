

# ------------------------------------------------------------ gconv


class GatedConv(nn.Module):
    """gconv: LFM2's double-gated short convolution.
        [B; C; x~] = x W_in^T                     (three row blocks of w_in)
        m = C * conv_k(B * x~)                    (depthwise, causal, no bias, no activation)
        y = m W_out^T, or, differential (doubled channels), y = (m_1 - (0.8 + diff_lambda) m_2) W_out^T
    Decode state: the last k-1 inputs of the convolution."""

    def __init__(self, gene, d_model, n_slots):
        super().__init__()
        self.differential = gene["differential"]
        self.channels = (2 if self.differential else 1) * d_model
        self.w_in = normal(3 * self.channels, d_model)
        self.conv = fan_in_uniform(self.channels, gene["kernel"])
        if self.differential:
            self.diff_lambda = zeros(d_model)
        self.w_out = out_projection(d_model, d_model, n_slots=n_slots)

    def run(self, x, conv_state):
        B, C, x_tilde = F.linear(x, self.w_in).split(self.channels, dim=-1)
        convolved, conv_state = causal_conv(B * x_tilde, self.conv, None, conv_state)
        m = C * convolved
        if self.differential:
            m = differential_halves(m, self.diff_lambda)
        return F.linear(m.type_as(x), self.w_out), conv_state

    def forward(self, x, shared=None):
        return self.run(x, None)[0], None

    def step(self, x, state, shared, position):
        """One token, x [batch, 1, d_model]; state: the conv inputs or None."""
        return self.run(x, state)
