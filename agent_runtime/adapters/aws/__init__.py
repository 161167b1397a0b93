"""AWS adapters: DynamoDB, SQS FIFO, S3. Clients are always passed in."""
