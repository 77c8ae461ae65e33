package chaos

func (b *bench) horizontalPhase(relay *relayProc, recv *receiver) {}
