"""`python -m common.offline_model`: convert SmolLM2-135M-Instruct from its PyPI GGUF once and print the folder
(`common/models/offline.py`)."""

from .models.offline import main

if __name__ == "__main__":
    main()
