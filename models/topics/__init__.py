"""Topic models: LDA by closed-form natural-gradient SVI (`online_lda`, the `lda` command's default)
or by SGVB in the DSL (`lda`), the logistic-normal topic model by Monte Carlo EM (`lntm`) and the
`lda` command (`cli`)."""

__all__: list[str] = []
