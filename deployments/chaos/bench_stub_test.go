package chaos

func (b *bench) fanoutPhase(relay *relayProc)                     {}
func (b *bench) horizontalPhase(relay *relayProc, recv *receiver) {}
