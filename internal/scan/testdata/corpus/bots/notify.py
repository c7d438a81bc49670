from slack_sdk import WebClient

slack = WebClient(token="xoxb-1841120258-1257882459-hElJ9WBBPaQ6KfKTQiKeVazb")
