"""What every layer uses and that knows nothing of fine-tuning: the versioned JSON reader/writer (`jsonfile`), the
named-kind registry with did-you-mean (`registry`), and the writable-folder checks (`writable`)."""
