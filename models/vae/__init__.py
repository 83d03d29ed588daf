"""The VAE family on MNIST: the Gaussian VAE (`model`), discrete latents (`discrete`), flow
posteriors (`flow`), the importance weighted autoencoder (`iwae`), the sigmoid belief network
(`sbn`), what the variants share (`variants`) and the plots (`plots`)."""

__all__: list[str] = []
