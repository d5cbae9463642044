

# ------------------------------------------------------------ rec

RG_LRU_C = 8.0  # Griffin's c: log a = -c r softplus(lambda)


def rglru_lambda(size):
    """Lambda such that a = exp(-8 softplus(lambda)), the decay at r = 1, starts uniform in [0.9, 0.999]."""
    a = torch.empty(size).uniform_(0.9, 0.999)
    return nn.Parameter(torch.log(torch.expm1(-torch.log(a) / RG_LRU_C)))


class RecurrentBlock(nn.Module):
    """rec: Griffin's recurrent block (De et al., 2024), the RG-LRU behind a short convolution.
        u = conv_k(x W_x^T) + conv_bias                       (depthwise, causal)
        r = sigmoid(u W_a^T + b_a),  i = sigmoid(u W_i^T + b_i)
        log a = -8 r softplus(lambda),  h_t = a_t h_{t-1} + sqrt(1 - a_t^2) (i_t u_t)
        y = (gelu_tanh(x W_y^T) * h) W_out^T
    Differential: the recurrent channels are doubled (w_x, conv, the gates, lambda) and
    h = h_1 - (0.8 + diff_lambda) h_2 before the GeLU gate. Decode state: the last k-1 inputs of the
    convolution and h."""

    def __init__(self, gene, d_model, n_slots):
        super().__init__()
        width, kernel = gene["width"], gene["conv_kernel"]
        inner = (2 if gene["differential"] else 1) * width
        self.differential = gene["differential"]
        self.w_x = normal(inner, d_model)
        self.w_y = normal(width, d_model)
        self.conv = fan_in_uniform(inner, kernel)
        self.conv_bias = zeros(inner)
        self.w_a = normal(inner, inner)
        self.w_i = normal(inner, inner)
        self.b_a = zeros(inner)
        self.b_i = zeros(inner)
        add_lambda(self, inner)  # here the RG-LRU's own Lambda, initialised by rglru_lambda
        with torch.no_grad():
            lambda_of(self).copy_(rglru_lambda(inner))
        if self.differential:
            self.diff_lambda = zeros(width)
        self.w_out = out_projection(d_model, width, n_slots=n_slots)

    def recurrence_inputs(self, u):
        """The RG-LRU's decay a and input sqrt(1 - a^2) (i u), float32."""
        u = u.float()
        r = torch.sigmoid(F.linear(u, self.w_a) + self.b_a).float()
        i = torch.sigmoid(F.linear(u, self.w_i) + self.b_i).float()
        log_a = -RG_LRU_C * r * F.softplus(lambda_of(self))
        return log_a.exp(), torch.sqrt(-torch.expm1(2.0 * log_a)) * (i * u)

    def output(self, x, h):
        if self.differential:
            h = differential_halves(h, self.diff_lambda)
        gate = F.gelu(F.linear(x, self.w_y), approximate="tanh")
        return F.linear((gate * h).type_as(x), self.w_out)

    def forward(self, x, shared=None):
        u, _ = causal_conv(F.linear(x, self.w_x), self.conv, self.conv_bias)
        return self.output(x, linear_scan(*self.recurrence_inputs(u))), None

    def step(self, x, state, shared, position):
        """One token, x [batch, 1, d_model]; state: (conv inputs, h) or None."""
        conv_state, h = state if state is not None else (None, None)
        u, conv_state = causal_conv(F.linear(x, self.w_x), self.conv, self.conv_bias, conv_state)
        a, b = self.recurrence_inputs(u)
        h = b if h is None else a * h + b
        return self.output(x, h), (conv_state, h)
