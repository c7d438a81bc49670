import os
from openai import OpenAI

client = OpenAI(api_key="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")
MODEL = os.environ.get("MODEL", "gpt-4o")
