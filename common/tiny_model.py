"""`python -m common.tiny_model OUT_DIR`: write the tiny random GPT-Neo and its offline tokenizer (`common/models/tiny.py`)."""

from .models.tiny import main

if __name__ == "__main__":
    main()
