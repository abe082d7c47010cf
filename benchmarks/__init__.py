"""The product's benchmarks (timing and robustness of the shipped pipeline); run each as a script."""
