"""On-policy preference pairs for DPO: sample the policy's answers, judge them, pair best vs worst; the rounds."""
