"""Topic models: LDA by stochastic variational inference (`lda`), the logistic-normal topic model
by Monte Carlo EM (`lntm`) and the `lda` command (`cli`)."""

__all__: list[str] = []
