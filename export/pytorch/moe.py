

# ------------------------------------------------------------ moe

MOE_AUX_WEIGHT = 0.01


class MoE(nn.Module):
    """moe: a mixture of SwiGLU experts with top-k softmax routing.
        p = softmax(x Router^T); the top_k experts by p (ties: the lower index);
        y = sum_j w_j SwiGLU_{e_j}(x),  w_j = p_{e_j} / sum_l p_{e_l}
    Load balancing (Switch, GShard), added to the training loss: aux = 0.01 E sum_e f_e P_e, f_e the share
    of the assignments routed to e (held constant), P_e the mean router probability. No decode state."""

    def __init__(self, gene, d_model, n_slots):
        super().__init__()
        self.experts, self.top_k, hidden = gene["experts"], gene["top_k"], gene["hidden"]
        self.router = normal(self.experts, d_model)
        self.w_gate = normal(self.experts, hidden, d_model)
        self.w_up = normal(self.experts, hidden, d_model)
        self.w_down = out_projection(self.experts, d_model, hidden, n_slots=n_slots)
        self.aux_loss = torch.zeros(())

    def forward(self, x, shared=None):
        flat = x.reshape(-1, x.shape[-1])
        probs = F.linear(flat, self.router).float().softmax(dim=-1)
        chosen = torch.sort(probs, dim=-1, descending=True, stable=True).indices[:, :self.top_k]
        weights = probs.gather(1, chosen)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(flat)
        for e in range(self.experts):  # one batched SwiGLU per expert over the tokens routed to it
            rows, j = (chosen == e).nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            h = F.silu(F.linear(flat[rows], self.w_gate[e])) * F.linear(flat[rows], self.w_up[e])
            out.index_add_(0, rows, (weights[rows, j, None] * F.linear(h, self.w_down[e])).type_as(out))
        share = torch.bincount(chosen.reshape(-1), minlength=self.experts).float() / chosen.numel()
        self.aux_loss = MOE_AUX_WEIGHT * self.experts * (share * probs.mean(dim=0)).sum()
        return out.view_as(x), None

    def step(self, x, state, shared, position):
        return self.forward(x)
