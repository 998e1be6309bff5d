"""What comes back: bounces, complaints, mailto unsubscribes, the suppression list."""
